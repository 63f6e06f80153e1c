// Which versions of an image are in use, and deleting the others. A version
// is in use while a job record names it or a systemd-nspawn process runs on
// it (build shells and ssh sessions keep no record). prepare never locks, so
// deletion first marks a version retired and then looks again (image/resolve.mts,
// isServedImagePath): a prepare either is seen or sees the mark.
import { existsSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { imageStoreDir, retiredMarker } from './resolve.mts';
import { currentVersion, listVersions, releaseImage } from './store.mts';
import { listJobRecords, type JobRecord } from '../job/record.mts';
import { tryLock } from '../lock.mts';
import { nspawnProcesses } from '../proc.mts';
import { log } from '../log.mts';
import { removeTree } from '../mounts.mts';
import { removeShiftedTrees } from '../storage/shifted.mts';
import type { Settings } from '../settings.mts';

/**
 * Where a job record may say an image lives: records hold real paths, so a
 * state directory reached through a symlink is matched by its real path too.
 * A version missed here would be deleted under its job.
 */
function recordPrefixes(settings: Settings, name: string): { stores: string[]; plains: string[] } {
  const roots = [settings.root];
  try {
    roots.push(realpathSync(settings.root));
  } catch {
    // no state directory yet: no records either
  }
  const unique = [...new Set(roots)];
  return { stores: unique.map((root) => `${root}/.images/${name}/`), plains: unique.map((root) => `${root}/${name}`) };
}

/**
 * Versions of image NAME in use, with who uses them: jobs by their records
 * (records of jobs started before a migration name the plain path), and
 * machines that keep no record (build shells, ssh sessions) by the
 * systemd-nspawn command lines that name a version.
 */
export function versionsInUse(settings: Settings, name: string, records: JobRecord[] = listJobRecords(settings)): Map<string, string[]> {
  const { stores, plains } = recordPrefixes(settings, name);
  const versions = listVersions(settings, name);
  const users = new Map<string, string[]>();
  const add = (version: string, jobId: string) => users.set(version, [...(users.get(version) ?? []), jobId]);
  for (const record of records) {
    const store = stores.find((prefix) => record.imagePath.startsWith(prefix));
    if (store) add(record.imagePath.slice(store.length).split('/')[0]!, record.jobId);
    else if (plains.includes(record.imagePath)) versions.filter((version) => version.startsWith('legacy-')).forEach((version) => add(version, record.jobId));
  }
  for (const { pid, argv } of nspawnProcesses()) {
    for (const arg of argv) {
      for (const store of stores) {
        const at = arg.indexOf(store);
        if (at >= 0) add(arg.slice(at + store.length).split(/[/:]/)[0]!, `pid ${pid}`);
      }
    }
  }
  return users;
}

/** Job records of the jobs running on image NAME, whichever version or layout. */
export function jobsOnImage(settings: Settings, name: string, records: JobRecord[] = listJobRecords(settings)): JobRecord[] {
  const { stores, plains } = recordPrefixes(settings, name);
  return records.filter((record) =>
    record.image === name || stores.some((store) => record.imagePath.startsWith(store)) || plains.includes(record.imagePath));
}

/**
 * Deletes the versions neither NAME nor any job uses. The caller holds the lock.
 * prepare is lock-free, so a version is first marked retired, then the job
 * records are read again: a prepare that recorded it before the mark keeps it,
 * one after the mark sees the mark and resolves NAME again.
 */
export async function removeUnusedVersions(settings: Settings, name: string): Promise<string[]> {
  const store = imageStoreDir(settings, name);
  const current = currentVersion(settings, name);
  const firstLook = versionsInUse(settings, name);
  const candidates = listVersions(settings, name).filter((version) => version !== current && !firstLook.has(version));
  for (const version of candidates) writeFileSync(retiredMarker(`${store}/${version}`), '');
  const secondLook = versionsInUse(settings, name);
  const removed: string[] = [];
  for (const version of candidates) {
    if (!secondLook.has(version)) {
      const paths = [`${store}/${version}`, realpathSync(`${store}/${version}`)];
      await removeTree(`${store}/${version}`);
      await removeShiftedTrees(settings, (source) => paths.includes(source));
      removed.push(version);
    }
    rmSync(retiredMarker(`${store}/${version}`), { force: true });
  }
  for (const entry of readdirSync(store)) {
    // Markers of versions deleted by a run that crashed half-way.
    if (entry.endsWith('.retired') && !existsSync(`${store}/${entry.slice(0, -'.retired'.length)}`)) rmSync(`${store}/${entry}`, { force: true });
  }
  if (removed.length) log.verbose(`image ${name}: removed unused versions ${removed.join(', ')}`);
  return removed;
}

/**
 * After a job's cleanup: deletes the versions of its image nobody uses any
 * more, unless someone is changing the image right now (they clean up then).
 */
export async function removeUnusedVersionsQuietly(settings: Settings, name: string): Promise<string[]> {
  if (!existsSync(imageStoreDir(settings, name))) return [];
  const lock = tryLock(`${imageStoreDir(settings, name)}/.lock`, 'cleanup');
  if (!('release' in lock)) return [];
  try {
    return await removeUnusedVersions(settings, name);
  } finally {
    releaseImage(settings, name, lock);
  }
}
