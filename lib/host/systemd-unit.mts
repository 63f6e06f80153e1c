// The transient unit a machine runs in on systemd hosts: its name and the
// systemd-run command line that creates it. Pure builders, tested as tables.
import { createHash } from 'node:crypto';
import type { Limits } from '../settings.mts';

/**
 * The unit is named after the machine, so cleanup finds it even when prepare
 * died before recording anything. The prefix keeps it apart from
 * systemd-run's own run-u<N> names, which a job id such as "u5" would hit.
 */
export function unitName(machine: string): string {
  return `nspawn-runner-${machine}.service`;
}

/** The machine a unit of unitName() runs, or undefined for any other unit. */
export function machineOfUnit(unit: string): string | undefined {
  return /^nspawn-runner-(.+)\.service$/.exec(unit)?.[1];
}

/**
 * The slice a job with services runs in (host/systemd-slice.mts), under
 * machine.slice: "-" in a slice's name separates its parents
 * (systemd.slice(5)), so the job's machine name has its own escaped as
 * systemd-escape does. Unit names stop at 255 characters: a job id that
 * long is hashed.
 */
export function sliceName(jobMachine: string): string {
  const name = `${sliceNamePrefix}${jobMachine.replaceAll('-', '\\x2d')}.slice`;
  return name.length <= 255 ? name : `${sliceNamePrefix}${createHash('sha256').update(jobMachine).digest('hex').slice(0, 32)}.slice`;
}

export const sliceNamePrefix = 'machine-nspawn\\x2drunner\\x2d';

/** Where `systemctl set-property --runtime` keeps a unit's properties (systemctl(1)). */
export function runtimeDropInDir(unit: string): string {
  return `/run/systemd/system.control/${unit}.d`;
}

export interface SystemdRunOptions {
  unit: string;
  description: string;
  limits: Limits;
  /** Variables for systemd-nspawn in the unit. */
  env?: Record<string, string>;
  /** No device policy (privileged machines); else systemd-nspawn@.service's. */
  allDevices?: boolean;
  systemdVersion: number;
  readyTimeoutSeconds: number;
  /** The machine's output, appended to this file instead of the journal (service machines). */
  outputFile?: string;
  /** The job's slice, which carries the limits instead of the unit (a job with services); default machine.slice. */
  slice?: string;
  /** The full systemd-nspawn argv, with --boot --notify-ready=yes. */
  nspawnArgs: readonly string[];
}

/** systemd.resource-control(5) properties for the configured limits; unset ones are left out. */
export function limitProperties(limits: Limits, version: number): string[] {
  const properties: string[] = [];
  if (limits.cpuWeight !== undefined) properties.push(`CPUWeight=${limits.cpuWeight}`);
  if (limits.memoryHigh !== undefined) properties.push(`MemoryHigh=${limits.memoryHigh}`);
  // As the original: MemoryMax only from systemd 249 on (issue 3).
  if (limits.memoryMax !== undefined && version >= 249) properties.push(`MemoryMax=${limits.memoryMax}`);
  if (limits.tasksMax !== undefined) properties.push(`TasksMax=${limits.tasksMax}`);
  return properties;
}

/**
 * The device policy of systemd-nspawn@.service: the pseudo devices, ptys,
 * tun, and loop and device-mapper devices for image tools; no disk.
 */
export const nspawnDeviceProperties = [
  'DevicePolicy=closed',
  'DeviceAllow=/dev/net/tun rwm',
  'DeviceAllow=char-pts rw',
  'DeviceAllow=/dev/loop-control rw',
  'DeviceAllow=block-loop rw',
  'DeviceAllow=block-blkext rw',
  'DeviceAllow=/dev/mapper/control rw',
  'DeviceAllow=block-device-mapper rw',
] as const;

export function buildSystemdRunArgs(options: SystemdRunOptions): string[] {
  const properties = [
    // systemd-run without --wait returns once the start job is done, and for
    // Type=notify that is READY=1, which nspawn --notify-ready=yes forwards
    // from the machine's systemd when its boot is complete.
    'Type=notify',
    `TimeoutStartSec=${options.readyTimeoutSeconds}s`,
    // From systemd-nspawn@.service: SIGTERM to nspawn only, then SIGKILL to
    // whatever is left in the cgroup; nspawn manages its own sub-cgroups;
    // 133 is nspawn's exit code for a reboot inside the machine.
    'KillMode=mixed',
    'Delegate=yes',
    'SuccessExitStatus=133',
    'RestartForceExitStatus=133',
    'WatchdogSec=3min',
    ...(options.slice ? [] : limitProperties(options.limits, options.systemdVersion)),
    ...(options.allDevices ? [] : nspawnDeviceProperties),
    ...(options.outputFile ? [`StandardOutput=append:${options.outputFile}`, 'StandardError=inherit'] : []),
  ];
  return [
    'systemd-run',
    '--quiet',
    `--unit=${options.unit}`,
    `--description=${options.description}`,
    `--slice=${options.slice ?? 'machine.slice'}`,
    // Unload the unit when it stops, even failed, so the job id can be reused.
    '--collect',
    ...properties.map((property) => `--property=${property}`),
    ...Object.entries(options.env ?? {}).map(([name, value]) => `--setenv=${name}=${value}`),
    '--',
    ...options.nspawnArgs,
  ];
}
