// The one place a host mode is chosen: forced by configuration, or detected
// the way sd_booted(3) does, by /run/systemd/system, plus the system bus.
import { existsSync } from 'node:fs';
import { SystemError } from '../errors.mts';
import type { HostName } from '../job.mts';
import type { Settings } from '../settings.mts';
import { directHost } from './direct.mts';
import type { HostMode } from './host.mts';

export function detectHostName(): HostName {
  return existsSync('/run/systemd/system') && existsSync('/run/dbus/system_bus_socket') ? 'systemd' : 'direct';
}

export function chooseHostName(settings: Settings): HostName {
  return settings.host === 'auto' ? detectHostName() : settings.host;
}

export async function hostByName(name: HostName): Promise<HostMode> {
  if (name === 'direct') return directHost;
  const { systemdHost } = await import('./systemd.mts');
  if (!existsSync('/run/systemd/system')) {
    throw new SystemError('host mode systemd needs systemd as PID 1', 'set host: direct (or auto) in the configuration');
  }
  return systemdHost;
}
