// tmpfs: the job's writes go to RAM (the original's RAMDISK mode), bounded by
// tmpfs_size, over the read-only image. The tmpfs is mounted on the host so
// its size can be bounded (nspawn's --volatile=overlay has no size option);
// release() unmounts it once the machine is gone.
import { existsSync, mkdirSync } from 'node:fs';
import { check } from '../exec.mts';
import { unmountUnder } from '../mounts.mts';
import type { Settings } from '../settings.mts';
import type { StorageBackend } from './backend.mts';
import { overlayLayer } from './overlay.mts';

export function buildTmpfsMountArgs(target: string, size: string): string[] {
  return ['mount', '-t', 'tmpfs', '-o', `size=${size},mode=0700`, '--', 'nspawn-runner-job', target];
}

export function tmpfsBackend(settings: Settings): StorageBackend {
  return {
    name: 'tmpfs',
    async prepare(imagePath, jobDir, options) {
      const ram = `${jobDir}/ram`;
      mkdirSync(ram);
      // In prepare: the lean check(), not zx (~30 ms to import, exec.mts).
      await check(buildTmpfsMountArgs(ram, settings.tmpfsSize));
      return overlayLayer(settings, imagePath, `${ram}/upper`, options);
    },
    async release(jobDir) {
      if (existsSync(`${jobDir}/ram`)) await unmountUnder(`${jobDir}/ram`);
    },
  };
}
