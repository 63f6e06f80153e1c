// The developer's checkout, seen from the host: what CI would know about the
// commit (sha, branch, message, project path), what changed for
// rules:changes, and the job's sources: a shallow fetch of HEAD as
// gitlab-runner does it (git init, fetch --depth, checkout of the sha), plus
// the working tree's changes with --dirty. exec runs as root on a checkout
// that is usually someone else's: git's ownership check is waived for it
// on the command line (safe.directory), never in a config file.
import { lstatSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { check, run, runSync } from '../exec.mts';
import { JobError } from '../errors.mts';
import { copyEntries } from './tree-copy.mts';
import { localDirName } from './artifacts.mts';

export interface RepoInfo {
  /** The checkout's top directory. */
  dir: string;
  owner: { uid: number; gid: number };
  sha: string;
  /** Undefined on a detached HEAD. */
  branch: string | undefined;
  defaultBranch: string;
  /** namespace/project, from the origin remote's URL; local/<directory> without one. */
  projectPath: string;
  remoteUrl: string | undefined;
  message: string;
  author: string;
  timestamp: string;
}

export function git(dir: string, args: readonly string[]): readonly string[] {
  return ['git', '-c', 'safe.directory=*', '-C', dir, ...args];
}

async function gitOutput(dir: string, args: readonly string[]): Promise<string | undefined> {
  const result = await run(git(dir, args));
  return result.code === 0 ? result.stdout.trim() : undefined;
}

export async function readRepo(cwd: string): Promise<RepoInfo> {
  const top = await run(git(cwd, ['rev-parse', '--show-toplevel']));
  if (top.code !== 0) throw new JobError(`${cwd} is not in a git checkout`, 'run exec in the checkout of the project whose .gitlab-ci.yml to run');
  const dir = top.stdout.trim();
  const sha = await gitOutput(dir, ['rev-parse', '--verify', '-q', 'HEAD^{commit}']);
  if (!sha) throw new JobError(`${dir} has no commit yet`, 'commit once: jobs get the sources of HEAD');
  const branch = await gitOutput(dir, ['symbolic-ref', '-q', '--short', 'HEAD']);
  const remoteUrl = (await gitOutput(dir, ['remote', 'get-url', 'origin'])) || undefined;
  const log = (await gitOutput(dir, ['log', '-1', '--format=%an <%ae>%x00%cI%x00%B', sha])) ?? '';
  const [author = '', timestamp = '', message = ''] = log.split('\0');
  const stats = statSync(dir);
  return {
    dir,
    owner: { uid: stats.uid, gid: stats.gid },
    sha,
    branch,
    defaultBranch: await defaultBranch(dir, branch),
    projectPath: projectPathOf(remoteUrl, dir),
    remoteUrl,
    message,
    author,
    timestamp,
  };
}

/** origin's HEAD, else main or master when such a branch exists, else the current branch. */
async function defaultBranch(dir: string, current: string | undefined): Promise<string> {
  const remoteHead = await gitOutput(dir, ['symbolic-ref', '-q', '--short', 'refs/remotes/origin/HEAD']);
  if (remoteHead) return remoteHead.replace(/^origin\//, '');
  for (const name of ['main', 'master']) {
    if ((await run(git(dir, ['show-ref', '-q', '--verify', `refs/heads/${name}`]))).code === 0) return name;
  }
  return current ?? 'main';
}

/** "git@host:group/sub/project.git" and "https://host/group/project" give group/sub/project. */
export function projectPathOf(remoteUrl: string | undefined, dir: string): string {
  const match = remoteUrl && /^(?:[a-z+]+:\/\/[^/]+\/|[^@/]+@[^:/]+:|[^:/]+:)(?:~[^/]*\/)?(.+?)(?:\.git)?\/?$/.exec(remoteUrl);
  const path = match ? match[1]!.replace(/^\/+/, '') : '';
  if (/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/.test(path) && !path.split('/').includes('..')) return path;
  const name = dir.split('/').filter(Boolean).at(-1) ?? 'project';
  return `local/${name.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[.-]+/, '') || 'project'}`;
}

function gitOutputSync(dir: string, args: readonly string[]): string | undefined {
  const result = runSync(git(dir, args));
  return result.code === 0 ? result.stdout.trim() : undefined;
}

/**
 * Files changed by the commits since compareTo (default: the default
 * branch; HEAD's own commit when on it), for rules:changes; with dirty, the
 * working tree's changes too. Undefined when there is nothing to compare
 * with, where GitLab takes every changes: as true.
 */
export function changedFiles(repo: RepoInfo, compareTo: string | undefined, dirty: boolean): string[] | undefined {
  const base = compareTo ?? repo.defaultBranch;
  if (base.startsWith('-')) return undefined;
  let from = gitOutputSync(repo.dir, ['merge-base', base, repo.sha]);
  if (from === repo.sha && compareTo === undefined) from = gitOutputSync(repo.dir, ['rev-parse', '-q', '--verify', `${repo.sha}^`]);
  if (!from) return undefined;
  const diff = gitOutputSync(repo.dir, ['diff', '--name-only', '-z', from, repo.sha]);
  if (diff === undefined) return undefined;
  const files = diff.split('\0').filter(Boolean);
  if (dirty) {
    const entries = runSync(git(repo.dir, ['status', '--porcelain', '-z', '--untracked-files=all'])).stdout.split('\0');
    for (let index = 0; index < entries.length; index++) {
      const entry = entries[index]!;
      if (entry.length < 4) continue;
      files.push(entry.slice(3));
      // A rename or copy is followed by its old name.
      if (/^[RC]|^.[RC]/.test(entry)) index++;
    }
  }
  return files;
}

export interface Sources {
  /** A git checkout of the job's sources, copied into each job's project directory. */
  dir: string;
  /** Files git tracks there: everything else is untracked (artifacts/cache untracked:). */
  tracked: Set<string>;
}

/**
 * Fetches HEAD into dir (depth GIT_DEPTH, 20 as in GitLab; 0 for all
 * history), checks out the sha detached as gitlab-runner does, and with
 * dirty copies the working tree's tracked and untracked (not ignored) files
 * over it and removes the deleted ones.
 */
export async function makeSources(repo: RepoInfo, dir: string, options: { dirty: boolean; depth: number }): Promise<Sources> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await check(git(dir, ['init', '-q']));
  const depth = options.depth > 0 ? [`--depth=${options.depth}`] : [];
  const refs = [`+${repo.sha}:refs/pipelines/local`];
  if (repo.branch) refs.push(`+refs/heads/${repo.branch}:refs/remotes/origin/${repo.branch}`);
  // The local transport drops -c settings before it starts upload-pack: give it its own.
  const uploadPack = "--upload-pack=git -c safe.directory='*' upload-pack";
  await check(git(dir, ['fetch', '-q', '--no-tags', uploadPack, ...depth, '--', `file://${repo.dir}`, ...refs]));
  await check(git(dir, ['checkout', '-q', '-f', repo.sha]));
  if (repo.remoteUrl) await check(git(dir, ['remote', 'add', 'origin', repo.remoteUrl]));
  if (options.dirty) {
    const listed = await check(git(repo.dir, ['ls-files', '-z', '--cached', '--others', '--exclude-standard']));
    const present = listed.stdout.split('\0').filter((path) => path && !path.startsWith(`${localDirName}/`) && exists(`${repo.dir}/${path}`));
    copyEntries(repo.dir, present, dir);
    const deleted = await check(git(repo.dir, ['ls-files', '-z', '--deleted']));
    for (const path of deleted.stdout.split('\0').filter(Boolean)) rmSync(`${dir}/${path}`, { force: true });
  }
  const tracked = await check(git(dir, ['ls-files', '-z']));
  const trackedSet = new Set(tracked.stdout.split('\0').filter(Boolean));
  if (options.dirty) {
    const listed = await check(git(repo.dir, ['ls-files', '-z', '--cached']));
    for (const path of listed.stdout.split('\0').filter(Boolean)) trackedSet.add(path);
  }
  return { dir, tracked: trackedSet };
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
