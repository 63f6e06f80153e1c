// btrfs: the job runs on a writable snapshot of the image subvolume. Nothing
// is copied and nothing is mounted; the snapshot is deleted at cleanup. An
// explicit snapshot rather than nspawn's --ephemeral, because the snapshot
// must outlive single nspawn invocations' bookkeeping and --ephemeral under
// a systemd service has known trouble (systemd issue 40013).
import { existsSync } from 'node:fs';
import { isSubvolume, snapshotSubvolume } from '../btrfs.mts';
import { log } from '../log.mts';
import { removeTree } from '../mounts.mts';
import type { StorageBackend } from './backend.mts';
import { overlayBackend } from './overlay.mts';

export function snapshotArgs(snapshot: string): string[] {
  return [`--directory=${snapshot}`];
}

export const btrfsBackend: StorageBackend = {
  name: 'btrfs',
  async prepare(imagePath, jobDir) {
    if (!isSubvolume(imagePath)) {
      // Images made by hand, or by the original on another filesystem, are
      // plain directories: overlayfs works on btrfs too.
      log.verbose(`${imagePath} is not a subvolume: using an overlay (convert it with chroot-create --convert)`);
      return overlayBackend.prepare(imagePath, jobDir);
    }
    const snapshot = `${jobDir}/root`;
    await snapshotSubvolume(imagePath, snapshot);
    return snapshotArgs(snapshot);
  },
  async release(jobDir) {
    const snapshot = `${jobDir}/root`;
    if (existsSync(snapshot)) await removeTree(snapshot);
  },
};
