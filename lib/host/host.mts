// How a machine is started and stopped on each kind of host. Stages reach a
// running machine the same way on both, through its stage agent: see job/stage.mts.
import type { HostName, JobRecord } from '../job/record.mts';
import type { Limits } from '../settings.mts';

export interface StartRequest {
  /** The full systemd-nspawn argv, from buildNspawnArgs(). */
  nspawnArgs: string[];
  jobDir: string;
  /** The image the machine is made from (read-only here). */
  imagePath: string;
  boot: boolean;
  /**
   * Ready once the payload runs, whatever it is (a service's entrypoint may
   * be a script, whose argv is its interpreter's), rather than once it runs
   * with the argv given (the stage agent).
   */
  anyPayload?: boolean;
  /** Where the machine's output goes instead of the job's nspawn.log or the journal. */
  outputFile?: string;
  /** The job's slice (makeJobSlice), which carries the limits instead of the machine. */
  slice?: string;
  readyTimeoutMs: number;
  /** Resource limits of the machine, where the host can apply them. */
  limits: Limits;
  /** Variables for systemd-nspawn itself (never the machine's). */
  nspawnEnv: Record<string, string>;
  /** Lift the device policy (privileged machines). */
  allDevices: boolean;
  /** Called as soon as a process exists that cleanup must stop, before waiting for readiness. */
  onSpawned(record: JobRecord): void;
}

export interface HostMode {
  readonly name: HostName;
  /** Whether machines on this host register with machined and boot their image's systemd. */
  readonly registers: boolean;
  /** Starts the machine and returns once it can run commands. */
  start(request: StartRequest, record: JobRecord): Promise<JobRecord>;
  /** Host PID of the machine's PID 1, or undefined when the machine is gone. */
  leaderOf(record: JobRecord): Promise<number | undefined>;
  /** Stops the machine and returns once every process of it is gone. Safe to repeat. */
  stop(record: JobRecord): Promise<void>;
  /**
   * Hosts that limit groups of machines (systemd: a slice) make one with the
   * job's limits for a job's machine and its services, which then count
   * against them; start() puts a machine in it when its request names it.
   */
  makeJobSlice?(jobMachine: string, limits: Limits): Promise<string>;
}

/**
 * A machine found from the host's side (a systemd unit, a systemd-nspawn
 * process), whatever a job record says or whether there is one at all.
 */
export interface FoundMachine {
  machine: string;
  /** Its systemd-nspawn command line: the storage flags name the job's directory. */
  commandLine: string;
  /** Stops it and returns once it is gone. */
  stop(): Promise<void>;
}

/** What identifies a running machine in a record host.start() returned: what stops it. */
export interface MachineFields {
  nspawnPid?: number;
  nspawnStartTime?: string;
  leaderPid?: number;
  leaderStartTime?: string;
  unit?: string;
}

export function machineFields(record: MachineFields): MachineFields {
  const { nspawnPid, nspawnStartTime, leaderPid, leaderStartTime, unit } = record;
  return Object.fromEntries(Object.entries({ nspawnPid, nspawnStartTime, leaderPid, leaderStartTime, unit })
    .filter(([, value]) => value !== undefined));
}
