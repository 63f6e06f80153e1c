// The one place a host mode is chosen: forced by configuration, or detected
// the way sd_booted(3) does, by /run/systemd/system, plus the system bus that
// systemd-run and machinectl talk to. Two stat calls: cheap enough for every
// prepare, and run/cleanup take the mode from the job record instead.
import { existsSync } from 'node:fs';
import { SystemError } from '../errors.mts';
import type { HostName } from '../job.mts';
import type { Settings } from '../settings.mts';
import { directHost } from './direct.mts';
import type { HostMode } from './host.mts';

/** What a systemd host mode needs that is missing under root ('' is the host's /), or undefined. */
export function missingForSystemd(root = ''): string | undefined {
  if (!existsSync(`${root}/run/systemd/system`)) return 'systemd is not PID 1 (no /run/systemd/system)';
  if (!existsSync(`${root}/run/dbus/system_bus_socket`)) return 'there is no system bus (no /run/dbus/system_bus_socket)';
  return undefined;
}

export function detectHostName(root = ''): HostName {
  return missingForSystemd(root) ? 'direct' : 'systemd';
}

export function chooseHostName(settings: Settings): HostName {
  return settings.host === 'auto' ? detectHostName() : settings.host;
}

export async function hostByName(name: HostName): Promise<HostMode> {
  if (name === 'direct') return directHost;
  const missing = missingForSystemd();
  if (missing) {
    throw new SystemError(`host mode systemd does not work here: ${missing}`,
      'set host: direct (or auto) in the configuration, or start dbus (apt install dbus)');
  }
  const { systemdHost } = await import('./systemd.mts');
  return systemdHost;
}
