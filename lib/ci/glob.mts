// Path globs as GitLab matches them (Go's doublestar, for include: local,
// artifacts, cache and rules:exists/changes): `*` and `?` within one path
// segment, `**` across segments, `[a-z]`, `{a,b}`, `\` escapes. And a walk
// of a directory tree that never follows a symlink.
import { lstatSync, readdirSync } from 'node:fs';

const globChars = /[*?[{\\]/;

export function hasGlob(pattern: string): boolean {
  return globChars.test(pattern);
}

/** The pattern as a project-relative path: no leading "./" or "/". */
export function normalizePattern(pattern: string): string {
  let path = pattern.trim();
  while (path.startsWith('./')) path = path.slice(2);
  return path.replace(/^\/+/, '').replace(/\/+$/, '').replace(/\/{2,}/g, '/');
}

/** Anchored regular expression for a doublestar glob over "/"-separated relative paths. */
export function pathGlobToRegExp(pattern: string): RegExp {
  const path = normalizePattern(pattern);
  let out = '';
  let braces = 0;
  for (let i = 0; i < path.length; i++) {
    const char = path[i]!;
    if (char === '\\' && i + 1 < path.length) {
      out += escapeRegExp(path[++i]!);
    } else if (char === '*' && path[i + 1] === '*') {
      const atStart = i === 0 || path[i - 1] === '/';
      const atEnd = i + 2 === path.length || path[i + 2] === '/';
      if (atStart && atEnd) {
        // "**/" matches zero or more whole segments; a final "**" anything below.
        if (i + 2 === path.length) out += '.*';
        else {
          out += '(?:[^/]*(?:/[^/]*)*/)?';
          i++;
        }
        i++;
      } else {
        out += '[^/]*';
        i++;
      }
    } else if (char === '*') {
      out += '[^/]*';
    } else if (char === '?') {
      out += '[^/]';
    } else if (char === '[') {
      const end = path.indexOf(']', i + 2);
      if (end === -1) {
        out += '\\[';
      } else {
        let body = path.slice(i + 1, end);
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        out += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (char === '{') {
      braces++;
      out += '(?:';
    } else if (char === '}' && braces > 0) {
      braces--;
      out += ')';
    } else if (char === ',' && braces > 0) {
      out += '|';
    } else {
      out += escapeRegExp(char);
    }
  }
  out += ')'.repeat(braces);
  return new RegExp(`^${out}$`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** The directory a glob can only match below: its segments before the first with a glob character. */
export function staticPrefix(pattern: string): string {
  const segments = normalizePattern(pattern).split('/');
  const fixed: string[] = [];
  for (const segment of segments.slice(0, -1)) {
    if (hasGlob(segment)) break;
    fixed.push(segment);
  }
  return fixed.join('/');
}

export interface Entry {
  /** Relative to the walked root, "/"-separated. */
  path: string;
  kind: 'file' | 'dir' | 'symlink' | 'other';
}

/**
 * Every entry below root/start (start itself excluded), depth first, sorted
 * by name. Symlinks are reported, never followed; skip(path) prunes a
 * directory. A start that is missing or not a real directory gives nothing.
 */
export function walkTree(root: string, start = '', skip: (path: string) => boolean = () => false): Entry[] {
  const entries: Entry[] = [];
  if (start !== '' && !isRealDirectoryPath(root, start)) return entries;
  const visit = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir === '' ? root : `${root}/${dir}`).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const path = dir === '' ? name : `${dir}/${name}`;
      const kind = entryKind(`${root}/${path}`);
      if (kind === undefined) continue;
      if (kind === 'dir' && skip(path)) continue;
      entries.push({ path, kind });
      if (kind === 'dir') visit(path);
    }
  };
  visit(start);
  return entries;
}

export function entryKind(path: string): Entry['kind'] | undefined {
  try {
    const stats = lstatSync(path);
    return stats.isSymbolicLink() ? 'symlink' : stats.isDirectory() ? 'dir' : stats.isFile() ? 'file' : 'other';
  } catch {
    return undefined;
  }
}

/** Whether every component of root/relative is a directory, none a symlink. */
export function isRealDirectoryPath(root: string, relative: string): boolean {
  let path = root;
  for (const segment of relative.split('/').filter(Boolean)) {
    path += `/${segment}`;
    if (entryKind(path) !== 'dir') return false;
  }
  return true;
}

/**
 * The paths below root that pattern matches, as GitLab's artifacts, cache
 * and exists do: a literal path names itself, a glob is matched against
 * every entry under its static prefix. `..` never leaves root.
 */
export function matchPaths(root: string, pattern: string, skip?: (path: string) => boolean): Entry[] {
  const path = normalizePattern(pattern);
  if (path === '' || path.split('/').includes('..')) return [];
  if (!hasGlob(path)) {
    const parent = path.split('/').slice(0, -1).join('/');
    const kind = isRealDirectoryPath(root, parent) ? entryKind(`${root}/${path}`) : undefined;
    return kind ? [{ path, kind }] : [];
  }
  const regex = pathGlobToRegExp(path);
  return walkTree(root, staticPrefix(path), skip).filter((entry) => regex.test(entry.path));
}
