// How a machine is started and stopped on each kind of host. Entering a
// running machine is the same on both (nsenter into its PID 1): see stage.mts.
import type { HostName, JobRecord } from '../job.mts';

export interface StartRequest {
  /** The full systemd-nspawn argv, from buildNspawnArgs(). */
  nspawnArgs: string[];
  jobDir: string;
  boot: boolean;
  readyTimeoutMs: number;
  /** Called as soon as a process exists that cleanup must stop, before waiting for readiness. */
  onSpawned(record: JobRecord): void;
}

export interface HostMode {
  readonly name: HostName;
  /** Whether machines on this host register with machined and can boot. */
  readonly registers: boolean;
  /** Starts the machine and returns once it can run commands. */
  start(request: StartRequest, record: JobRecord): Promise<JobRecord>;
  /** Host PID of the machine's PID 1, or undefined when the machine is gone. */
  leaderOf(record: JobRecord): Promise<number | undefined>;
  /** Stops the machine and returns once every process of it is gone. Safe to repeat. */
  stop(record: JobRecord): Promise<void>;
}
