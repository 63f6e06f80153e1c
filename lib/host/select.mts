// The one place a host mode is chosen: forced by configuration, or detected
// the way sd_booted(3) does, by /run/systemd/system, plus the system bus that
// systemd-run and machinectl talk to. Two stat calls: cheap enough for every
// prepare, and run/cleanup take the mode from the job record instead.
import { existsSync } from 'node:fs';
import { SystemError } from '../errors.mts';
import type { HostName } from '../job.mts';
import type { Settings } from '../settings.mts';
import { directHost, findNspawnMachines } from './direct.mts';
import type { FoundMachine, HostMode } from './host.mts';

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

export interface StoppedMachines {
  machines: string[];
  /** One message per machine that would not stop. */
  failed: string[];
}

/**
 * Stops every machine whose nspawn command line passes test, found from the
 * host's side whatever any job record says: where systemd runs, our units
 * first (those matching unitPattern, all of ours without one, none with
 * false), stopped cleanly through systemd; then systemd-nspawn processes
 * (direct host mode, or a unit that would not stop).
 */
export async function stopMachinesWhere(test: (commandLine: string) => boolean, unitPattern?: string | false): Promise<StoppedMachines> {
  const stopped = new Set<string>();
  const failed = new Map<string, string>();
  const stop = async (found: FoundMachine): Promise<void> => {
    try {
      await found.stop();
      stopped.add(found.machine);
      failed.delete(found.machine);
    } catch (error) {
      failed.set(found.machine, `${found.machine}: ${(error as Error).message}`);
    }
  };
  if (unitPattern !== false && !missingForSystemd()) {
    const { findUnitMachines } = await import('./systemd.mts');
    for (const found of await findUnitMachines(unitPattern)) if (test(found.commandLine)) await stop(found);
  }
  for (const found of findNspawnMachines()) if (test(found.commandLine)) await stop(found);
  return { machines: [...stopped], failed: [...failed.values()] };
}
