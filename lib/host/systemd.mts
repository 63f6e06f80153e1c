// Hosts whose PID 1 is systemd: implemented with machined and systemd-run.
import { SystemError } from '../errors.mts';
import type { HostMode } from './host.mts';

const notYet = (): never => {
  throw new SystemError('the systemd host mode is not implemented yet', 'set host: direct in the configuration');
};

export const systemdHost: HostMode = {
  name: 'systemd',
  registers: true,
  start: async () => notYet(),
  leaderOf: async () => notYet(),
  stop: async () => notYet(),
};
