// keep_failed: the machine of a job whose build failed stays, with its
// writable layer and its processes, for keep_failed after the job ends, so
// an admin can look inside (`nspawn-runner shell --job ID`, job/shell.mts).
//
// gitlab-runner tells cleanup_exec nothing about how the job went, so `run`
// leaves a mark in the job's directory (host-only, not the io directory the
// job can write) when a stage fails, and `cleanup` keeps a marked job
// instead of removing it: it records keptUntil and leaves the machine
// running. From then on the job lives until keptUntil whatever its owner
// does (job/gc.mts, jobHealth); gc removes it after, and a new job with the same
// id replaces it at once (scripts/prepare.mts). A second cleanup removes a
// kept job: that is how an admin lets one go early.
import { existsSync, writeFileSync } from 'node:fs';
import { hostByName } from '../host/select.mts';
import { jobDir, readJobRecord, writeJobRecord, type JobRecord } from './record.mts';
import { log } from '../log.mts';
import type { Settings } from '../settings.mts';

/** Stages whose failure does not fail the job: gitlab-runner ignores after_script's, and the last one only tidies up. */
const ignoredStages = new Set(['after_script', 'cleanup_file_variables']);

function markerPath(dir: string): string {
  return `${dir}/failed`;
}

export function formatDuration(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** The command that enters a kept job, with the state directory when it is not the default. */
export function enterCommand(settings: Pick<Settings, 'root'>, jobId: string): string {
  return `nspawn-runner${settings.root === '/var/lib/nspawn-runner' ? '' : ` --root ${settings.root}`} shell --job ${jobId}`;
}

/**
 * Called by run when a stage failed: marks the job failed, and the first
 * time, with keep_failed on, tells the job log how to enter the machine.
 */
export function noteFailedStage(settings: Settings, jobId: string, stage: string, code: number): void {
  if (ignoredStages.has(stage)) return;
  try {
    writeFileSync(markerPath(jobDir(settings, jobId)), `${stage} ${code}\n`, { flag: 'wx' });
  } catch {
    return; // marked by an earlier stage, or the job directory is gone
  }
  if (settings.keepFailedSeconds > 0) {
    log.info(`stage ${stage} failed: the job's machine is kept for ${formatDuration(settings.keepFailedSeconds)} after the job ends (keep_failed). ` +
      `To look inside, as root on the runner host: ${enterCommand(settings, jobId)}`);
  }
}

/**
 * cleanup's first step: keeps a failed job's machine instead of removing it.
 * Returns true when the job is kept; false sends cleanup on as usual.
 */
export async function keepFailedJob(settings: Settings, jobId: string): Promise<boolean> {
  if (settings.keepFailedSeconds <= 0) return false;
  const dir = jobDir(settings, jobId);
  if (!existsSync(markerPath(dir))) return false;
  let record: JobRecord | undefined;
  try {
    record = readJobRecord(settings, jobId);
  } catch {
    return false;
  }
  // Already kept: this is a second cleanup, which lets it go.
  if (!record || record.keptUntil || record.state !== 'running') return false;
  const host = await hostByName(record.host);
  if (!(await host.leaderOf(record))) return false;
  const keptUntil = new Date(Date.now() + settings.keepFailedSeconds * 1000).toISOString();
  writeJobRecord(dir, { ...record, keptUntil });
  log.info(`job ${jobId} failed: machine ${record.machine} kept until ${keptUntil}; enter it with "${enterCommand(settings, jobId)}", ` +
    `remove it early with "nspawn-runner cleanup --id ${jobId}"`);
  return true;
}

/** Whether job id is a kept job, which a new job with the same id replaces. */
export function isKeptJob(settings: Settings, jobId: string): boolean {
  try {
    return Boolean(readJobRecord(settings, jobId)?.keptUntil);
  } catch {
    return false;
  }
}
