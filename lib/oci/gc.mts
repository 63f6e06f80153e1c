// Listing and collecting pulled images. An image goes when no job has used
// it for oci.gc_unused_after and none uses it now; its blobs go when no image
// left needs them; pulls killed half-way leave staging directories that go
// once their process is gone. A running job's image is never removed: as for
// local image versions (image-retire.mts), the image is first marked retired,
// then the job records are read again, and prepare checks the mark after
// recording its image.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { diskUsage, formatSize } from '../disk.mts';
import { retiredMarker } from '../image/resolve.mts';
import { listJobRecords, type JobRecord } from '../job/record.mts';
import { tryLock } from '../lock.mts';
import { log } from '../log.mts';
import { removeTree } from '../mounts.mts';
import { nspawnProcesses } from '../proc.mts';
import type { Settings } from '../settings.mts';
import { removeShiftedTrees } from '../storage/shifted.mts';
import { gcLockPath, isDeadStaging, stagingRoot } from './pull.mts';
import {
  imageDir, lastUsed, listImageKeys, listRefs, ociDir, readImageMeta, treeOf, writeLayoutIndex, type PulledImageMeta,
} from './store.mts';

/** Who uses pulled image key: job records, and nspawn processes whose command line names its tree. */
export function usersOfImage(key: string, records: JobRecord[] = [], processes = nspawnProcesses()): string[] {
  const marker = `/.oci/images/${key}/`;
  return [
    ...records.filter((record) => record.oci?.key === key || `${record.imagePath}/`.includes(marker)).map((record) => `job ${record.jobId}`),
    ...processes.filter(({ argv }) => argv.some((arg) => arg.includes(marker))).map(({ pid }) => `pid ${pid}`),
  ];
}

export interface PulledImageRow {
  key: string;
  digest: string;
  platform: string | null;
  /** Every reference (tag) that resolved to it last, and the one it was pulled by. */
  references: string[];
  /** du of the tree; null without --size. */
  sizeBytes: number | null;
  /** Config and layers as stored in the shared layout (shared blobs count for each image). */
  blobBytes: number;
  pulledAt: string;
  lastUsed: string | null;
  jobs: string[];
  tree: string;
}

export async function listPulledImages(settings: Settings, withSize = true): Promise<PulledImageRow[]> {
  const records = listJobRecords(settings);
  const refs = listRefs(settings);
  const rows: PulledImageRow[] = [];
  for (const key of listImageKeys(settings)) {
    const meta = readImageMeta(settings, key);
    if (!meta) continue;
    const used = lastUsed(settings, key);
    rows.push({
      key,
      digest: meta.digest,
      platform: meta.platform,
      references: [...new Set([...refs.filter((ref) => ref.key === key).map((ref) => ref.reference), meta.reference])].sort(),
      sizeBytes: withSize ? await diskUsage(treeOf(settings, key)) : null,
      blobBytes: meta.blobBytes,
      pulledAt: meta.pulledAt,
      lastUsed: used ? used.toISOString() : null,
      jobs: records.filter((record) => record.oci?.key === key).map((record) => record.jobId),
      tree: treeOf(settings, key),
    });
  }
  return rows;
}

export function formatPulledTable(rows: PulledImageRow[]): string {
  const header = ['REFERENCE', 'DIGEST', 'SIZE', 'LAST USED', 'JOBS'];
  const lines = rows.map((row) => [
    row.references.join(', ') + (row.platform ? ` (${row.platform})` : ''),
    row.digest.slice(0, 'sha256:'.length + 12),
    formatSize(row.sizeBytes),
    row.lastUsed ? row.lastUsed.replace('T', ' ').replace(/:\d\d\.\d+Z$/, 'Z') : '-',
    row.jobs.length ? row.jobs.join(',') : '-',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)));
  return [header, ...lines].map((line) => line.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export interface OciGcReport {
  /** Pulled images removed, by reference and digest. */
  images: string[];
  /** Blobs no image needs any more, and their bytes. */
  blobs: number;
  blobBytes: number;
  /** Staging directories of pulls whose process is gone. */
  staging: string[];
}

/** A staging directory without an owner file is only this young while its pull creates it. */
const unownedGraceMs = 60_000;

async function sweepStaging(settings: Settings): Promise<string[]> {
  let entries: string[];
  try {
    entries = readdirSync(stagingRoot(settings));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const entry of entries) {
    const dir = `${stagingRoot(settings)}/${entry}`;
    let owner: string | undefined;
    try {
      owner = readFileSync(`${dir}/.owner`, 'utf8');
    } catch {
      if (Date.now() - (statSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? 0) < unownedGraceMs) continue;
    }
    if (owner !== undefined && !isDeadStaging(owner)) continue;
    log.info(`removing what a killed pull left: ${dir}`);
    await removeTree(`${dir}/image/tree`);
    await removeTree(`${dir}/tree`);
    await removeTree(dir);
    removed.push(entry);
  }
  return removed;
}

/** Removes pulled image key unless someone uses it; returns whether it went. The caller holds its lock. */
async function removeIfUnused(settings: Settings, key: string): Promise<boolean> {
  if (usersOfImage(key, listJobRecords(settings)).length) return false;
  const marker = retiredMarker(treeOf(settings, key));
  writeFileSync(marker, '');
  if (usersOfImage(key, listJobRecords(settings)).length) {
    rmSync(marker, { force: true });
    return false;
  }
  // Out of sight first, in one rename; then deleted at leisure.
  const aside = `${stagingRoot(settings)}/gc-${process.pid}-${randomBytes(4).toString('hex')}`;
  renameSync(imageDir(settings, key), aside);
  // The tree first: a read-only subvolume on btrfs, which only its own deletion removes.
  await removeTree(`${aside}/tree`);
  await removeTree(aside);
  // uid-shifted copies (private_users on overlay) are keyed by the tree's real path.
  await removeShiftedTrees(settings, (source) => source.endsWith(`/.oci/images/${key}/tree`));
  for (const ref of listRefs(settings)) if (ref.key === key) rmSync(ref.file, { force: true });
  return true;
}

/**
 * Blobs no pulled image needs, deleted only while no pull runs: gc holds its
 * lock before it looks for pulls, and a pull registers before it checks the
 * lock (pull.mts), so a blob a pull counts on is never deleted under it.
 */
async function sweepBlobs(settings: Settings): Promise<{ count: number; bytes: number }> {
  const lock = tryLock(gcLockPath(settings), 'gc');
  if (!('release' in lock)) return { count: 0, bytes: 0 };
  try {
    const pulls = readdirSync(stagingRoot(settings)).filter((entry) => {
      try {
        return !isDeadStaging(readFileSync(`${stagingRoot(settings)}/${entry}/.owner`, 'utf8'));
      } catch {
        return !entry.startsWith('gc-');
      }
    });
    if (pulls.length) {
      log.verbose(`gc: ${pulls.length} pull(s) under way, blobs are left for the next gc`);
      return { count: 0, bytes: 0 };
    }
    const needed = new Set(listImageKeys(settings).flatMap((key) => readImageMeta(settings, key)?.blobs ?? []));
    const dir = `${ociDir(settings)}/blobs/sha256`;
    let count = 0;
    let bytes = 0;
    for (const hex of readdirSync(dir)) {
      if (needed.has(`sha256:${hex}`)) continue;
      bytes += statSync(`${dir}/${hex}`).size;
      rmSync(`${dir}/${hex}`, { force: true });
      count++;
    }
    return { count, bytes };
  } finally {
    lock.release();
  }
}

export async function collectOciGarbage(settings: Settings, now = Date.now()): Promise<OciGcReport> {
  const report: OciGcReport = { images: [], blobs: 0, blobBytes: 0, staging: [] };
  if (!existsSync(ociDir(settings))) return report;
  report.staging = await sweepStaging(settings);
  const unusedMs = settings.oci.gcUnusedAfterSeconds * 1000;
  for (const key of listImageKeys(settings)) {
    const used = lastUsed(settings, key);
    if (used && now - used.getTime() < unusedMs) continue;
    const meta: PulledImageMeta | undefined = readImageMeta(settings, key);
    const lock = tryLock(`${ociDir(settings)}/locks/${key}`, 'gc');
    if (!('release' in lock)) continue;
    try {
      if (await removeIfUnused(settings, key)) {
        const name = meta ? `${meta.reference}@${meta.digest}` : key;
        log.info(`gc: removed the pulled image ${name}, unused since ${used?.toISOString() ?? 'ever'}`);
        report.images.push(name);
      }
    } finally {
      lock.release();
    }
  }
  const blobs = await sweepBlobs(settings);
  report.blobs = blobs.count;
  report.blobBytes = blobs.bytes;
  writeLayoutIndex(settings);
  return report;
}
