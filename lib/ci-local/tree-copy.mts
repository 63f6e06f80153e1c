// Copies files between a job's project directory and the checkout's
// .nspawn-runner/ (artifacts, cache), on the host, as root. What a job wrote
// is untrusted: a symlink `lib -> /etc` followed by "lib/passwd" must neither
// read nor write the host's /etc. So no path is ever resolved through a
// symlink, on either side: every parent is checked to be a real directory
// (lstat, component by component), symlinks are copied as symlinks, and only
// regular files, directories and symlinks are copied, without set-id bits.
// Nothing else writes to either tree while we copy (the job's machine is
// stopped, or not started yet), so the checks cannot be raced.
import { chmodSync, copyFileSync, constants, lchownSync, lstatSync, mkdirSync, readlinkSync, rmSync, symlinkSync, unlinkSync, utimesSync } from 'node:fs';
import { entryKind, isRealDirectoryPath } from '../ci/glob.mts';

export interface Owner {
  uid: number;
  gid: number;
}

export interface CopyResult {
  copied: number;
  /** Paths not copied because a parent on one side is not a real directory. */
  refused: string[];
}

/** Makes root/relative a real directory, component by component; false when something else is in the way. */
export function makeRealDirectory(root: string, relative: string, owner?: Owner): boolean {
  let path = root;
  for (const segment of relative.split('/').filter(Boolean)) {
    path += `/${segment}`;
    const kind = entryKind(path);
    if (kind === undefined) {
      mkdirSync(path, { mode: 0o755 });
      if (owner) lchownSync(path, owner.uid, owner.gid);
    } else if (kind !== 'dir') {
      return false;
    }
  }
  return true;
}

function parentOf(relative: string): string {
  const index = relative.lastIndexOf('/');
  return index === -1 ? '' : relative.slice(0, index);
}

/** Copies the entries (paths relative to from) into to, parents first. */
export function copyEntries(from: string, paths: Iterable<string>, to: string, owner?: Owner): CopyResult {
  const result: CopyResult = { copied: 0, refused: [] };
  const sorted = [...new Set(paths)].sort();
  for (const relative of sorted) {
    if (relative === '' || relative.split('/').some((segment) => segment === '..' || segment === '.' || segment === '')) {
      result.refused.push(relative);
      continue;
    }
    const source = `${from}/${relative}`;
    const target = `${to}/${relative}`;
    const kind = isRealDirectoryPath(from, parentOf(relative)) ? entryKind(source) : undefined;
    if (kind === undefined || kind === 'other') continue;
    if (!makeRealDirectory(to, parentOf(relative), owner)) {
      result.refused.push(relative);
      continue;
    }
    const existing = entryKind(target);
    if (kind === 'dir') {
      if (existing !== 'dir') {
        if (existing) unlinkSync(target);
        mkdirSync(target, { mode: 0o755 });
      }
      chmodSync(target, (lstatSync(source).mode & 0o777) | 0o700);
    } else {
      if (existing === 'dir') rmSync(target, { recursive: true, force: true });
      else if (existing) unlinkSync(target);
      if (kind === 'symlink') {
        symlinkSync(readlinkSync(source), target);
      } else {
        const stats = lstatSync(source);
        copyFileSync(source, target, constants.COPYFILE_FICLONE);
        chmodSync(target, stats.mode & 0o777);
        utimesSync(target, stats.atime, stats.mtime);
      }
    }
    if (owner) lchownSync(target, owner.uid, owner.gid);
    result.copied++;
  }
  return result;
}
