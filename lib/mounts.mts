// Mount points and safe removal. A tree a bootstrap or a machine used may
// still have /proc, /sys or a bind of /dev mounted inside it after a crash:
// deleting through such a mount would delete the host's files. Unmount first.
import { existsSync, readFileSync, readdirSync, rmSync, type Dirent } from 'node:fs';
import { deleteSubvolume, isSubvolume } from './btrfs.mts';
import { SystemError } from './errors.mts';
import { run } from './exec.mts';

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((line) => unescapeMountPath(line.split(' ')[4]!));
}

/** Mount points at or below path, deepest first. */
export function mountsUnder(path: string, points: string[] = mountPoints()): string[] {
  const prefix = path.endsWith('/') ? path : `${path}/`;
  return [...new Set(points.filter((point) => point === path || point.startsWith(prefix)))]
    .sort((a, b) => b.length - a.length);
}

export async function unmountUnder(path: string): Promise<void> {
  // The lean run(), not zx: cleanup of a tmpfs job unmounts, and zx's import
  // alone (~30 ms) would double a cleanup (exec.mts).
  for (const point of mountsUnder(path)) {
    const result = await run(['umount', '--', point]);
    // A busy mount is detached lazily: it disappears from the tree at once.
    if (result.code !== 0) await run(['umount', '--lazy', '--', point]);
  }
  const left = mountsUnder(path);
  if (left.length) throw new SystemError(`cannot unmount ${left.join(', ')}`, 'stop what uses it, then retry');
}

/**
 * rm -rf that never crosses into a mounted filesystem. A btrfs subvolume is
 * deleted as one (instant); if that fails (nested subvolumes), file by file.
 */
export async function removeTree(path: string): Promise<void> {
  if (!existsSync(path)) return;
  await unmountUnder(path);
  if (isSubvolume(path) && (await deleteSubvolume(path))) return;
  try {
    rmSync(path, { recursive: true, force: true });
  } catch (error) {
    // Bun's error names only path itself, whatever failed below it. rm has
    // removed all it could, so what is left names the culprits.
    const { code, message } = error as NodeJS.ErrnoException;
    throw Object.assign(new Error(`${message}; left: ${leftBelow(path).join(', ')}`), { code });
  }
}

/** The deepest entries left under path (files, empty directories), a few of them. */
function leftBelow(path: string, limit = 3): string[] {
  const found: string[] = [];
  const visit = (dir: string): void => {
    let entries: Dirent[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      // unreadable: it is what is left
    }
    if (entries.length === 0 && dir !== path) found.push(dir);
    for (const entry of entries) {
      if (found.length >= limit) return;
      if (entry.isDirectory()) visit(`${dir}/${entry.name}`);
      else found.push(`${dir}/${entry.name}`);
    }
  };
  visit(path);
  return found.length ? found : [path];
}
