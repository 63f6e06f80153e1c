// btrfs facts and operations. Any subvolume's root directory has inode 256,
// so "is this a subvolume" costs a stat, not a process.
import { statSync, statfsSync } from 'node:fs';
import { check, run } from './exec.mts';

const BTRFS_SUPER_MAGIC = 0x9123683e;
const subvolumeRootInode = 256;

export function isBtrfs(path: string): boolean {
  return statfsSync(path).type === BTRFS_SUPER_MAGIC;
}

export function isSubvolume(path: string): boolean {
  try {
    return statSync(path).ino === subvolumeRootInode && isBtrfs(path);
  } catch {
    return false;
  }
}

// Creations (a pulled image's tree), snapshots and deletions run in stages
// (a job's prepare and cleanup): the lean run()/check(), not zx, whose import
// alone (~30 ms) would cost a third of a whole prepare (exec.mts).

/** A new image tree: chroot-create, maintenance, and a pull in a job's prepare. */
export async function createSubvolume(path: string): Promise<void> {
  await check(['btrfs', '-q', 'subvolume', 'create', '--', path]);
}

export async function snapshotSubvolume(source: string, target: string, readOnly = false): Promise<void> {
  await check(['btrfs', '-q', 'subvolume', 'snapshot', ...(readOnly ? ['-r'] : []), '--', source, target]);
}

/**
 * Deletes a subvolume at once. One that holds nested subvolumes (a booted
 * machine's systemd may create some) cannot be deleted that way; the caller
 * falls back to removing files, which the kernel allows for empty subvolumes.
 */
export async function deleteSubvolume(path: string): Promise<boolean> {
  return (await run(['btrfs', '-q', 'subvolume', 'delete', '--', path])).code === 0;
}

/** Makes a subvolume read-only: a pulled image's tree, shared by every job's snapshot of it. */
export async function setSubvolumeReadOnly(path: string): Promise<void> {
  await check(['btrfs', 'property', 'set', '-ts', '--', path, 'ro', 'true']);
}
