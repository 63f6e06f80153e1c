// A real btrfs filesystem for tests: mkfs.btrfs on a sparse file, loop-mounted.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

export interface ScratchFilesystem {
  mountPoint: string;
  dispose(): void;
}

export function mountScratchBtrfs(size = '1G'): ScratchFilesystem {
  const dir = mkdtempSync(`${tmpdir()}/nsr-btrfs-`);
  const image = `${dir}/fs.img`;
  const mountPoint = `${dir}/mnt`;
  execFileSync('truncate', ['-s', size, image]);
  execFileSync('mkfs.btrfs', ['-q', image], { stdio: 'ignore' });
  execFileSync('mkdir', [mountPoint]);
  execFileSync('mount', ['-o', 'loop', image, mountPoint]);
  return {
    mountPoint,
    dispose() {
      execFileSync('umount', ['--lazy', mountPoint]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
