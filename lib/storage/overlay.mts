// overlayfs: works on any filesystem. The image is the read-only lower layer;
// the job writes to its own upper directory. nspawn mounts the overlay in the
// machine's mount namespace, so no mount is ever visible (or left) on the host.
import { mkdirSync } from 'node:fs';
import { escapeColons } from '../nspawn.mts';
import type { Settings } from '../settings.mts';
import type { LayerOptions, StorageBackend } from './backend.mts';
import { chownToBase, ensureShiftedTree, shiftedUserArgs } from './shifted.mts';

export function overlayArgs(imagePath: string, upperDir: string): string[] {
  return [`--directory=${imagePath}`, `--overlay=${escapeColons(imagePath)}:${escapeColons(upperDir)}:/`];
}

/**
 * The overlay flags for image and upper directory; with private users, over
 * the image's uid-shifted copy (shifted.mts) and with the upper directory
 * owned by the machine's root.
 */
export async function overlayLayer(settings: Settings, imagePath: string, upper: string, options: LayerOptions): Promise<string[]> {
  mkdirSync(upper);
  if (!options.privateUsers) return overlayArgs(imagePath, upper);
  const shifted = await ensureShiftedTree(settings, imagePath);
  chownToBase(upper, shifted.base);
  return [...overlayArgs(shifted.path, upper), ...shiftedUserArgs(shifted.base)];
}

export function overlayBackend(settings: Settings): StorageBackend {
  return {
    name: 'overlay',
    prepare: (imagePath, jobDir, options) => overlayLayer(settings, imagePath, `${jobDir}/upper`, options),
    async release() {
      // The upper directory goes with the job directory.
    },
  };
}
