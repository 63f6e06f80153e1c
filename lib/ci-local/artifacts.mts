// Artifacts and caches of local jobs, kept in the checkout's .nspawn-runner/
// (owned by the checkout's owner, ignored by git through its own .gitignore):
//   artifacts/<job>/   the files a job's artifacts: selected, as paths in the project
//   dotenv/<job>.json  variables of its artifacts:reports:dotenv
//   cache/<key>/       a cache, as paths in the project
//   variables.yml      the developer's own variables (secrets that are not in git)
// Paths are selected as gitlab-runner's archivers select them: globs with
// `**`, a directory meaning everything below it, `exclude` patterns matched
// against each path, `untracked` meaning every file git does not track.
import { existsSync, lchownSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { matchPaths, normalizePattern, pathGlobToRegExp, walkTree } from '../ci/glob.mts';
import { copyEntries, type Owner } from './tree-copy.mts';

export const localDirName = '.nspawn-runner';

export function localDir(checkout: string): string {
  return `${checkout}/${localDirName}`;
}

/** A job name as a directory name: "/" (in "test 1/2") is the only character that cannot be one. */
export function jobDirName(job: string): string {
  return job.replaceAll('/', '_');
}

export function artifactsDir(checkout: string, job: string): string {
  return `${localDir(checkout)}/artifacts/${jobDirName(job)}`;
}

export function dotenvFile(checkout: string, job: string): string {
  return `${localDir(checkout)}/dotenv/${jobDirName(job)}.json`;
}

/** Creates .nspawn-runner/SUB (owned by the checkout's owner), with a .gitignore that hides it all from git. */
export function ensureLocalDir(checkout: string, sub: string, owner: Owner): string {
  const base = localDir(checkout);
  for (const dir of [base, `${base}/${sub}`]) {
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true });
      lchownSync(dir, owner.uid, owner.gid);
    }
  }
  if (!existsSync(`${base}/.gitignore`)) {
    writeFileSync(`${base}/.gitignore`, '# nspawn-runner exec: artifacts, caches and local variables, never committed\n*\n');
    lchownSync(`${base}/.gitignore`, owner.uid, owner.gid);
  }
  return `${base}/${sub}`;
}

export interface Selection {
  paths: string[];
  /** Patterns that matched nothing, or left the project directory. */
  warnings: string[];
}

export interface SelectOptions {
  paths: readonly string[];
  exclude?: readonly string[];
  untracked?: boolean;
  /** Files git tracks in the job's sources (for untracked). */
  tracked?: ReadonlySet<string>;
}

export function selectPaths(projectDir: string, options: SelectOptions): Selection {
  const selected = new Set<string>();
  const warnings: string[] = [];
  const skipGit = (dir: string) => dir === '.git';
  for (const pattern of options.paths) {
    const path = normalizePattern(pattern);
    if (pattern.startsWith('/') || path.split('/').includes('..') || path === '') {
      warnings.push(`${pattern}: not inside the project directory`);
      continue;
    }
    const entries = matchPaths(projectDir, path);
    if (entries.length === 0) warnings.push(`${pattern}: no matching files`);
    for (const entry of entries) {
      selected.add(entry.path);
      if (entry.kind === 'dir') for (const below of walkTree(projectDir, entry.path)) selected.add(below.path);
    }
  }
  if (options.untracked) {
    const tracked = options.tracked ?? new Set<string>();
    for (const entry of walkTree(projectDir, '', skipGit)) {
      if (entry.kind !== 'dir' && !tracked.has(entry.path)) selected.add(entry.path);
    }
  }
  const excludes = (options.exclude ?? []).map((pattern) => pathGlobToRegExp(pattern));
  const paths = [...selected].filter((path) => !excludes.some((regex) => regex.test(path))).sort();
  return { paths, warnings };
}

/**
 * Replaces target (a directory under .nspawn-runner/) with the selected
 * paths of projectDir: built beside it, then renamed into place, so a
 * reader sees the old tree or the new one.
 */
export function storeTree(projectDir: string, paths: readonly string[], target: string, owner: Owner): number {
  const staging = `${target}.new-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const { copied } = copyEntries(projectDir, paths, staging, owner);
  lchownSync(staging, owner.uid, owner.gid);
  const old = `${target}.old-${process.pid}`;
  if (existsSync(target)) renameSync(target, old);
  renameSync(staging, target);
  rmSync(old, { recursive: true, force: true });
  return copied;
}

/** Copies a stored tree into a project directory (artifacts of dependencies, a restored cache). */
export function restoreTree(source: string, projectDir: string): number {
  if (!existsSync(source)) return 0;
  return copyEntries(source, walkTree(source).map((entry) => entry.path), projectDir).copied;
}

/** GitLab's limits on a dotenv report: 5 KiB, and names as variables have them. */
const maxDotenvBytes = 5 * 1024;

/** KEY=VALUE lines of a dotenv report; anything else is skipped. */
export function parseDotenv(text: string): Record<string, string> {
  const variables: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match) variables[match[1]!] = match[2]!;
  }
  return variables;
}

export function readDotenvReport(projectDir: string, file: string): Record<string, string> | string {
  const entries = matchPaths(projectDir, file).filter((entry) => entry.kind === 'file');
  if (entries.length === 0) return `${file}: no such file`;
  const text = readFileSync(`${projectDir}/${entries[0]!.path}`);
  if (text.length > maxDotenvBytes) return `${file}: larger than ${maxDotenvBytes} bytes`;
  return parseDotenv(text.toString('utf8'));
}

/** A cache key as a directory name: kept when it is one, else made one and told apart by a hash. */
export function cacheDirName(key: string): string {
  if (/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(key) && key.length <= 100) return key;
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 12);
  return `${key.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.]+/, '_').slice(0, 80)}-${hash}`;
}

/** cache: key: files: a digest of the files' contents (GitLab digests their last commits). */
export function filesKey(projectDir: string, files: readonly string[], prefix: string | undefined): string {
  const hash = createHash('sha256');
  let found = 0;
  for (const pattern of files) {
    for (const entry of matchPaths(projectDir, pattern).filter((candidate) => candidate.kind === 'file')) {
      hash.update(`${entry.path}\0`).update(readFileSync(`${projectDir}/${entry.path}`)).update('\0');
      found++;
    }
  }
  const digest = found ? hash.digest('hex').slice(0, 40) : 'default';
  return prefix ? `${prefix}-${digest}` : digest;
}
