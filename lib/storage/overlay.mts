// overlayfs: works on any filesystem. The image is the read-only lower layer;
// the job writes to its own upper directory. nspawn mounts the overlay in the
// machine's mount namespace, so no mount is ever visible (or left) on the host.
import { mkdirSync } from 'node:fs';
import { escapeColons } from '../nspawn.mts';
import type { StorageBackend } from './backend.mts';

export function overlayArgs(imagePath: string, upperDir: string): string[] {
  return [`--directory=${imagePath}`, `--overlay=${escapeColons(imagePath)}:${escapeColons(upperDir)}:/`];
}

export const overlayBackend: StorageBackend = {
  name: 'overlay',
  async prepare(imagePath, jobDir) {
    const upper = `${jobDir}/upper`;
    mkdirSync(upper);
    return overlayArgs(imagePath, upper);
  },
  async release() {
    // The upper directory goes with the job directory.
  },
};
