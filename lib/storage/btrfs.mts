// btrfs: the job runs on a writable snapshot of the image subvolume. Nothing
// is copied and nothing is mounted; the snapshot is deleted at cleanup. An
// explicit snapshot rather than nspawn's --ephemeral, because the snapshot
// must outlive single nspawn invocations' bookkeeping and --ephemeral under
// a systemd service has known trouble (systemd issue 40013).
import { existsSync } from 'node:fs';
import { isSubvolume, snapshotSubvolume } from '../btrfs.mts';
import { log } from '../log.mts';
import { removeTree } from '../mounts.mts';
import type { Settings } from '../settings.mts';
import type { StorageBackend } from './backend.mts';
import { overlayLayer } from './overlay.mts';

export function snapshotArgs(snapshot: string, privateUsers = false): string[] {
  // Idmapped mounts keep the snapshot usable from the new user namespace
  // without chown-ing it (systemd-nspawn(1), --private-users-ownership).
  return [`--directory=${snapshot}`, ...(privateUsers ? ['--private-users=pick', '--private-users-ownership=auto'] : [])];
}

export function btrfsBackend(settings: Settings): StorageBackend {
  return {
    name: 'btrfs',
    async prepare(imagePath, jobDir, options) {
      if (!isSubvolume(imagePath)) {
        // Images made by hand, or by the original on another filesystem, are
        // plain directories: overlayfs works on btrfs too.
        log.verbose(`${imagePath} is not a subvolume: using an overlay (convert it with chroot-create --convert)`);
        return overlayLayer(settings, imagePath, `${jobDir}/upper`, options);
      }
      const snapshot = `${jobDir}/root`;
      await snapshotSubvolume(imagePath, snapshot);
      return snapshotArgs(snapshot, options.privateUsers);
    },
  async release(jobDir) {
    const snapshot = `${jobDir}/root`;
    if (existsSync(snapshot)) await removeTree(snapshot);
  },
  };
}
