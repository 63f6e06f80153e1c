// The versioned image store, which lets an image change while jobs run on it.
//
//   <root>/NAME -> .images/NAME/<version>     the version new jobs get
//   <root>/.images/NAME/<version>/            one complete tree per version
//   <root>/.images/NAME/image.json            how it was made, last maintenance
//   <root>/.images/NAME/.lock/                held by whoever changes the image
//
// A change never touches a version in service: it is made on a new version
// (a btrfs snapshot of the current one on btrfs, a reflink copy elsewhere, or
// a fresh bootstrap) and published by renaming a new symlink over NAME, which
// is atomic. A job resolves NAME to its real path once, at prepare, and
// records it (job.mts), so it keeps its version through every stage. Old
// versions are deleted once no job record names them. A failed change
// publishes nothing.
import {
  existsSync, lstatSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, rmdirSync, symlinkSync, unlinkSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createSubvolume, isBtrfs, isSubvolume, snapshotSubvolume } from './btrfs.mts';
import { zx } from './exec.mts';
import { imagePath, imageStoreDir } from './image.mts';
import { lockOrFail, type Lock } from './lock.mts';
import { log } from './log.mts';
import type { Settings } from './settings.mts';

/**
 * versioned: NAME is our symlink into the store. plain: NAME is a directory,
 * made by hand or by the original. linked: a symlink of the admin's, to a
 * directory elsewhere, which we never delete. missing: nothing at NAME.
 */
export type ImageLayout = 'versioned' | 'plain' | 'linked' | 'missing';

/** <UTC time>-<random>: sorts by age, unique without coordination. Migrated plain trees get "legacy-". */
const versionPattern = /^(legacy-)?\d{8}T\d{6}Z-[0-9a-f]{6}$/;

export function newVersionName(now = new Date(), legacy = false): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${legacy ? 'legacy-' : ''}${stamp}-${randomBytes(3).toString('hex')}`;
}

export function isVersionName(name: string): boolean {
  return versionPattern.test(name);
}

/** The symlink's target relative to the state directory, so the whole directory can move or be bind-mounted. */
export function versionLinkTarget(name: string, version: string): string {
  return `.images/${name}/${version}`;
}

export function layoutOf(settings: Settings, name: string): ImageLayout {
  let stat;
  try {
    stat = lstatSync(imagePath(settings, name));
  } catch {
    return 'missing';
  }
  if (stat.isDirectory()) return 'plain';
  if (!stat.isSymbolicLink()) return 'missing';
  return currentVersion(settings, name) !== undefined ? 'versioned' : 'linked';
}

/** The version NAME points to, when NAME is our symlink. */
export function currentVersion(settings: Settings, name: string): string | undefined {
  let target: string;
  try {
    target = readlinkSync(imagePath(settings, name));
  } catch {
    return undefined;
  }
  const prefix = `.images/${name}/`;
  const version = target.startsWith(prefix) ? target.slice(prefix.length) : undefined;
  return version !== undefined && isVersionName(version) ? version : undefined;
}

export function lockImage(settings: Settings, name: string, purpose: string): Lock {
  return lockOrFail(`${imageStoreDir(settings, name)}/.lock`, purpose, `image ${name}`);
}

/**
 * Copies a tree into a new version without duplicating data where the
 * filesystem can share it: a snapshot of a subvolume, else reflinks. On btrfs
 * the copy is always a subvolume, so jobs on it get snapshots.
 */
export async function cloneTree(source: string, target: string): Promise<void> {
  if (isSubvolume(source)) {
    await snapshotSubvolume(source, target);
    return;
  }
  const onBtrfs = isBtrfs(target.slice(0, target.lastIndexOf('/')));
  if (onBtrfs) await createSubvolume(target);
  log.verbose(`copying ${source} (${onBtrfs ? 'reflinks' : 'a full copy where the filesystem cannot share blocks'})`);
  // -a keeps owners, modes, hard links, ACLs and xattrs (file capabilities).
  const $ = await zx();
  await $`cp -a --reflink=auto --no-target-directory -- ${source} ${target}`;
}

/** Points NAME at version, atomically: a new symlink renamed over the old one. */
export function publishVersion(settings: Settings, name: string, version: string): void {
  const temporary = `${settings.root}/.${name}.link-${process.pid}`;
  rmSync(temporary, { force: true });
  symlinkSync(versionLinkTarget(name, version), temporary);
  renameSync(temporary, imagePath(settings, name));
}

/**
 * Moves a plain-directory image into the store as its first version, so it
 * can be updated like any other. Jobs running on it keep running: their
 * overlay or snapshot holds the tree, wherever its path moves.
 */
export function migratePlainImage(settings: Settings, name: string): string {
  const version = newVersionName(new Date(), true);
  const temporary = `${settings.root}/.${name}.link-${process.pid}`;
  rmSync(temporary, { force: true });
  symlinkSync(versionLinkTarget(name, version), temporary);
  // Between these two renames NAME is missing for an instant; resolveImage looks twice.
  renameSync(imagePath(settings, name), `${imageStoreDir(settings, name)}/${version}`);
  renameSync(temporary, imagePath(settings, name));
  log.info(`image ${name}: moved into the versioned store as ${version}`);
  return version;
}

export function listVersions(settings: Settings, name: string): string[] {
  try {
    return readdirSync(imageStoreDir(settings, name)).filter(isVersionName).sort();
  } catch {
    return [];
  }
}

/**
 * Releases the lock and removes the image's store when nothing is left in
 * it: no version, and nothing worth remembering (a removed image, or a lock
 * taken for an image that turned out to be plain or missing).
 */
export function releaseImage(settings: Settings, name: string, lock: Lock): void {
  const store = imageStoreDir(settings, name);
  const empty = listVersions(settings, name).length === 0 &&
    (layoutOf(settings, name) === 'missing' || !existsSync(`${store}/image.json`));
  if (empty) rmSync(`${store}/image.json`, { force: true });
  lock.release();
  if (!empty) return;
  try {
    for (const entry of readdirSync(store)) {
      if (entry.endsWith('.retired') || entry.startsWith('.lock-')) rmSync(`${store}/${entry}`, { recursive: true, force: true });
    }
    // Fails when someone took the lock in between: the store is theirs then.
    rmdirSync(store);
  } catch {
    // left for whoever holds it now
  }
}

/** The tree a new version starts from: the current one, wherever it is. */
export function currentTree(settings: Settings, name: string): string {
  return realpathSync(imagePath(settings, name));
}

/** Removes NAME itself (the symlink, never what an admin's symlink points to). */
export function unpublishImage(settings: Settings, name: string): void {
  unlinkSync(imagePath(settings, name));
}
