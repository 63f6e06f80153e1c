// Crash recovery. A job is alive while its prepare runs, or while its machine
// runs and the process that prepared it (gitlab-runner) lives, or is unknown. Everything
// else under the state directory that belongs to no live job - machines,
// mounts, writable layers, records, half-made images - is garbage: the runner
// was killed mid-stage, the host rebooted, or cleanup never came.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostByName, missingForSystemd, stopMachinesWhere } from '../host/select.mts';
import { imagesDir, isImageName } from '../image/resolve.mts';
import { jobDir, listJobRecords, readJobRecord, unknownOwner, type JobRecord } from './record.mts';
import { log } from '../log.mts';
import { cleanupJob } from './machine.mts';
import { recordEvent } from '../metrics/events.mts';
import { removeTree } from '../mounts.mts';
import { escapeColons } from '../nspawn.mts';
import { isOwnerRunning, isRunning, ownerMark } from '../proc.mts';
import type { OciGcReport } from '../oci/gc.mts';
import { jobsDir, type Settings } from '../settings.mts';

export type JobHealth = 'preparing' | 'running' | 'kept' | 'orphaned';

export async function jobHealth(record: JobRecord, now = Date.now()): Promise<JobHealth> {
  if (record.state === 'preparing') {
    return isRunning(record.preparerPid, record.preparerStartTime) ? 'preparing' : 'orphaned';
  }
  // A kept failed job lives until its time is up, whatever its owner does (job/keep-failed.mts).
  if (record.keptUntil && Date.parse(record.keptUntil) <= now) return 'orphaned';
  const host = await hostByName(record.host);
  if (!(await host.leaderOf(record))) return 'orphaned';
  if (record.keptUntil) return 'kept';
  // An owner that cannot be known is not a dead one: such a job lives while its machine runs.
  if (record.ownerPid === unknownOwner) return 'running';
  return isRunning(record.ownerPid, record.ownerStartTime) ? 'running' : 'orphaned';
}

export interface JobStatus {
  record: JobRecord;
  health: JobHealth;
  ageSeconds: number;
}

export async function listJobStatus(settings: Settings): Promise<JobStatus[]> {
  const now = Date.now();
  return Promise.all(listJobRecords(settings).map(async (record) => ({
    record,
    health: await jobHealth(record),
    ageSeconds: Math.round((now - Date.parse(record.createdAt)) / 1000),
  })));
}

/** A job directory without a record is only this young while its prepare claims it. */
const unrecordedGraceMs = 60_000;

function jobIds(settings: Settings): string[] {
  try {
    return readdirSync(jobsDir(settings));
  } catch {
    return [];
  }
}

/**
 * The cheap sweep every prepare runs first: orphaned jobs only, judged from
 * their records. Returns the ids it cleaned.
 */
export async function sweepOrphanedJobs(settings: Settings): Promise<string[]> {
  const cleaned: string[] = [];
  for (const id of jobIds(settings)) {
    let record: JobRecord | undefined;
    try {
      record = readJobRecord(settings, id);
    } catch {
      record = undefined;
    }
    const orphaned = record
      ? (await jobHealth(record)) === 'orphaned'
      : Date.now() - statSync(jobDir(settings, id), { throwIfNoEntry: false })!.mtimeMs > unrecordedGraceMs;
    if (!orphaned) continue;
    log.info(record?.keptUntil ? `job ${id}: kept until ${record.keptUntil}, which has passed: removing it` : `job ${id}: no live owner, cleaning it up`);
    await cleanupJob(settings, id);
    cleaned.push(id);
  }
  if (cleaned.length) recordEvent(settings.root, 'gc_removed_jobs', cleaned.length);
  return cleaned;
}

export interface GcReport {
  jobs: string[];
  /** Machines (units or nspawn processes) of job directories that are gone. */
  strayMachines: string[];
  staging: string[];
  /** Image versions no job or machine uses any more, as NAME/VERSION. */
  versions: string[];
  shifted: string[];
  /** Pulled OCI images unused for oci.gc_unused_after, their blobs, and what killed pulls left. */
  oci: OciGcReport;
}

/** The full collection, for the gc command and its timer. */
export async function collectGarbage(settings: Settings): Promise<GcReport> {
  const jobs = await sweepOrphanedJobs(settings);
  const stray = await stopStrays(settings);
  const staging = await sweepStaging(settings);
  const versions = await sweepImageVersions(settings);
  // uid-shifted copies (private_users) of image trees that are gone.
  const { removeShiftedTrees } = await import('../storage/shifted.mts');
  const { collectOciGarbage } = await import('../oci/gc.mts');
  const oci = await collectOciGarbage(settings);
  const shifted = await removeShiftedTrees(settings, (source) => !existsSync(source));
  const counts = { stray_machines: stray.length, staging: staging.length, versions: versions.length, shifted: shifted.length } as const;
  for (const [kind, count] of Object.entries(counts)) if (count) recordEvent(settings.root, `gc_removed_${kind as keyof typeof counts}`, count);
  return { jobs, strayMachines: stray, staging, versions, shifted, oci };
}

/**
 * Machines of jobs whose directory is already gone, asked right before each
 * is stopped (a prepare may claim a new directory meanwhile); then, of jobs
 * with services, the slices those machines were in and the pastas of their
 * pods. Returns the machines.
 */
async function stopStrays(settings: Settings): Promise<string[]> {
  const jobIdIn = new RegExp(`(?:${escapeRegExp(jobsDir(settings))}|${escapeRegExp(escapeColons(jobsDir(settings)))})/([^/ ]+)/`);
  const isGone = (id: string | undefined): boolean => id !== undefined && !existsSync(jobDir(settings, id));
  const stray = await stopMachinesWhere((commandLine) => isGone(jobIdIn.exec(commandLine)?.[1]));
  for (const machine of stray.machines) log.info(`stopped machine ${machine}: its job directory is gone`);
  for (const failure of stray.failed) log.warn(`cannot stop a machine whose job directory is gone: ${failure}`);
  const warn = (what: string) => (error: Error): string[] => (log.warn(`stopping the ${what} of jobs that are gone: ${error.message}`), []);
  if (!missingForSystemd()) {
    const { stopStraySlices } = await import('../host/systemd-slice.mts');
    const slices = await stopStraySlices((machine) => isGone(machine.slice('run-'.length))).catch(warn('slices'));
    for (const slice of slices) log.info(`stopped ${slice}: its job directory is gone`);
  }
  const { stopStrayPastas } = await import('../services/pod.mts');
  const pastas = await stopStrayPastas((netns) => isGone(jobIdIn.exec(netns)?.[1])).catch(warn('pastas'));
  for (const netns of pastas) log.info(`stopped pasta of ${netns}: its job directory is gone`);
  return stray.machines;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Marks a staging directory as owned by this process, for sweepStaging. */
export function claimStaging(dir: string): void {
  writeFileSync(`${dir}/.owner`, `${ownerMark()}\n`);
}

/**
 * Old image versions whose last user ended without a cleanup, and versions
 * a crashed maintenance left half-made: whatever no job or machine uses,
 * for every image nobody is changing right now (image/retire.mts).
 */
async function sweepImageVersions(settings: Settings): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(imagesDir(settings)).filter(isImageName);
  } catch {
    return [];
  }
  const { removeUnusedVersionsQuietly } = await import('../image/retire.mts');
  const removed: string[] = [];
  for (const name of names) removed.push(...(await removeUnusedVersionsQuietly(settings, name)).map((version) => `${name}/${version}`));
  return removed;
}

/** Half-made images whose creating process is gone. */
async function sweepStaging(settings: Settings): Promise<string[]> {
  const staging = `${settings.root}/.staging`;
  let entries: string[];
  try {
    entries = readdirSync(staging);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const entry of entries) {
    const dir = `${staging}/${entry}`;
    let owner = '';
    try {
      owner = readFileSync(`${dir}/.owner`, 'utf8');
    } catch {
      // no owner file: judged by age below
    }
    const alive = owner.trim() ? isOwnerRunning(owner) : Date.now() - statSync(dir).mtimeMs < unrecordedGraceMs;
    if (alive) continue;
    log.info(`removing the half-made image ${dir}`);
    await removeTree(dir);
    removed.push(entry);
  }
  return removed;
}
