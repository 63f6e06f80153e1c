// A job's bookkeeping: <root>/.jobs/<id>/ holds the job record, the storage
// backend's writable layer and the logs. Creating the directory is the lock
// that refuses a second prepare for the same job.
import type { ServiceRecord } from '../services/machines.mts';
import type { PodRecord } from '../services/pod.mts';
import type { BackendName } from '../storage/backend.mts';
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { JobError, SystemError } from '../errors.mts';
import { removeTree } from '../mounts.mts';
import { jobsDir, type Settings } from '../settings.mts';

// Machine names must be valid host names (systemd-nspawn --machine), and the
// original named machines run-<id>: keep ids to what fits both.
const jobIdPattern = /^[A-Za-z0-9][A-Za-z0-9-]{0,59}$/;

export function parseJobId(raw: string | undefined): string {
  if (raw === undefined || raw === '') {
    throw new SystemError('no job id', 'pass --id or run under gitlab-runner, which sets CUSTOM_ENV_CI_JOB_ID');
  }
  if (!jobIdPattern.test(raw)) {
    throw new JobError(`invalid job id ${JSON.stringify(raw)}: use up to 60 letters, digits and "-", not starting with "-"`);
  }
  return raw;
}

export function machineName(jobId: string): string {
  return `run-${jobId}`;
}


/** What prepare learned and later stages need. Written atomically, read by run and cleanup. */
export interface JobRecord {
  jobId: string;
  machine: string;
  image: string;
  imagePath: string;
  backend: BackendName;
  host: HostName;
  createdAt: string;
  /** --personality of the machine (x86 for i386 images). */
  personality?: string;
  /** 'preparing' until the machine is ready; gc leaves a job alone while its preparer lives. */
  state: 'preparing' | 'running';
  /** The prepare process, and the process that ran it (gitlab-runner): the job lives while they do. */
  preparerPid: number;
  preparerStartTime?: string;
  /** unknownOwner (0) when prepare's parent is in another PID namespace. */
  ownerPid: number;
  ownerStartTime?: string;
  /** direct host: the systemd-nspawn process and the machine's PID 1 (with start times). */
  nspawnPid?: number;
  nspawnStartTime?: string;
  leaderPid?: number;
  leaderStartTime?: string;
  /** systemd host: the transient unit running systemd-nspawn. */
  unit?: string;
  /** keep_failed: the job failed and its machine stays until then (job/keep-failed.mts). */
  keptUntil?: string;
  /** A pulled OCI image (image is then its reference): its key in <root>/.oci/images. */
  oci?: { key: string; digest: string };
  /** A job with services: the network namespace its machines share, and the service machines. */
  pod?: PodRecord;
  services?: ServiceRecord[];
  /** The slice of the job's machines, which carries its limits (systemd hosts, jobs with services). */
  slice?: string;
  /** CI_DEBUG_SERVICES: stages pass the services' output on to the job log. */
  debugServices?: boolean;
}

/**
 * The owner of a job whose prepare was started from another PID namespace
 * (nsenter into gitlab-runner's container): getppid() is 0 there, as in the
 * record. Such a job lives while its machine runs.
 */
export const unknownOwner = 0;

/** How machines are started: systemd units, or systemd-nspawn driven directly (host/). */
export type HostName = 'systemd' | 'direct';
export type { BackendName };

export function jobDir(settings: Settings, jobId: string): string {
  return `${jobsDir(settings)}/${jobId}`;
}

/** Creates the job's directory; fails if the job is already prepared. */
export function claimJobDir(settings: Settings, jobId: string): string {
  const dir = jobDir(settings, jobId);
  mkdirSync(jobsDir(settings), { recursive: true, mode: 0o700 });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new SystemError(`job ${jobId} is already prepared`, `run "nspawn-runner cleanup --id ${jobId}" first`);
    }
    throw error;
  }
  return dir;
}

export function writeJobRecord(dir: string, record: JobRecord): void {
  writeFileSync(`${dir}/job.json.tmp`, `${JSON.stringify(record, null, 1)}\n`);
  renameSync(`${dir}/job.json.tmp`, `${dir}/job.json`);
}

/** The job's record, or undefined when the job was never prepared (or is cleaned up). */
export function readJobRecord(settings: Settings, jobId: string): JobRecord | undefined {
  let text: string;
  try {
    text = readFileSync(`${jobDir(settings, jobId)}/job.json`, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SystemError(`job ${jobId}: unreadable job record: ${(error as Error).message}`);
  }
  try {
    return parseJobRecord(JSON.parse(text));
  } catch (error) {
    throw new SystemError(`job ${jobId}: corrupt job record: ${(error as Error).message}`);
  }
}

const backendNames: readonly string[] = ['btrfs', 'overlay', 'tmpfs'] satisfies BackendName[];
const hostNames: readonly string[] = ['systemd', 'direct'] satisfies HostName[];

/**
 * Checks what run, cleanup and gc act on: a record cut short by a full disk
 * or edited by hand must not send them to the wrong host mode or storage.
 */
export function parseJobRecord(value: unknown): JobRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
  const record = value as Record<string, unknown>;
  for (const key of ['jobId', 'machine', 'image', 'imagePath', 'createdAt']) {
    if (typeof record[key] !== 'string') throw new Error(`${key} is not a string`);
  }
  if (!backendNames.includes(record.backend as string)) throw new Error(`unknown backend ${JSON.stringify(record.backend)}`);
  if (!hostNames.includes(record.host as string)) throw new Error(`unknown host mode ${JSON.stringify(record.host)}`);
  if (record.state !== 'preparing' && record.state !== 'running') throw new Error(`unknown state ${JSON.stringify(record.state)}`);
  if (record.keptUntil !== undefined && Number.isNaN(Date.parse(record.keptUntil as string))) throw new Error('keptUntil is not a time');
  for (const key of ['preparerPid', 'ownerPid', 'nspawnPid', 'leaderPid']) {
    const pid = record[key];
    const optional = key === 'nspawnPid' || key === 'leaderPid';
    if (!(optional && pid === undefined) && !(Number.isInteger(pid) && (pid as number) >= 0)) throw new Error(`${key} is not a process id`);
  }
  return value as JobRecord;
}

export function requireJobRecord(settings: Settings, jobId: string): JobRecord {
  const record = readJobRecord(settings, jobId);
  if (!record) {
    throw new SystemError(`job ${jobId} has no machine`, 'prepare did not run for it, or cleanup already did');
  }
  return record;
}

/** Never deletes through a mount left under the job directory. */
export async function removeJobDir(settings: Settings, jobId: string): Promise<void> {
  await removeTree(jobDir(settings, jobId));
}

/** Records of every prepared job: who uses which image right now. */
export function listJobRecords(settings: Settings): JobRecord[] {
  let ids: string[];
  try {
    ids = readdirSync(jobsDir(settings));
  } catch {
    return [];
  }
  return ids.flatMap((id) => {
    try {
      const record = readJobRecord(settings, id);
      return record ? [record] : [];
    } catch {
      return [];
    }
  });
}
