// What the host shares into every machine. gitlab-runner's cache and
// artifacts stages run `gitlab-runner cache-archiver`, `artifacts-uploader`
// and friends *inside* the job's environment (executors/custom calls the
// helper as plain "gitlab-runner" from PATH), and write the cache to the
// cache_dir that config_exec reported. So the cache directory must outlive
// the machine (a bind of the host's, at the same path), and the runner's own
// binary must be there (a read-only bind of the host's, so admins need not
// install a matching gitlab-runner into every image).
import { accessSync, constants, readlinkSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { SystemError } from '../errors.mts';
import type { Bind } from '../nspawn.mts';
import { buildsDir, cacheDir, type Settings } from '../settings.mts';

/** Where the host's gitlab-runner appears inside every machine: first in the machine's PATH. */
export const runnerBinaryTarget = '/usr/local/bin/gitlab-runner';

export interface BinaryLookup {
  /** prepare's parent: gitlab-runner itself when it runs prepare_exec (it execs it directly). */
  parentPid: number;
  pathEnv: string | undefined;
  /** readlink(2) of /proc/PID/exe; injectable for tests. */
  readExe?: (pid: number) => string | undefined;
  isExecutableFile?: (path: string) => boolean;
}

function readExe(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The gitlab-runner binary to share, or undefined when there is none to
 * share. `gitlab_runner: auto` takes the process that started us when it is
 * a gitlab-runner (the exact version driving this job), else the first
 * gitlab-runner in PATH; `none` shares nothing; a path shares that file.
 */
export function findRunnerBinary(setting: string, lookup: BinaryLookup): string | undefined {
  const exe = lookup.readExe ?? readExe;
  const executable = lookup.isExecutableFile ?? isExecutableFile;
  if (setting === 'none') return undefined;
  if (setting !== 'auto') {
    if (executable(setting)) return setting;
    throw new SystemError(`gitlab_runner: ${setting} is not an executable file`,
      'point gitlab_runner at the gitlab-runner binary, or set it to auto or none');
  }
  // An upgraded binary shows as "PATH (deleted)": its path now names another file.
  const parent = exe(lookup.parentPid);
  if (parent && !parent.endsWith(' (deleted)') && basename(parent).startsWith('gitlab-runner') && executable(parent)) {
    return parent;
  }
  for (const dir of (lookup.pathEnv ?? '').split(':')) {
    if (dir.startsWith('/') && executable(`${dir}/gitlab-runner`)) return `${dir}/gitlab-runner`;
  }
  return undefined;
}

/** Binds of every machine: cache dir, builds dir when kept, and the runner binary. */
export function buildShares(settings: Settings, runnerBinary: string | undefined): Bind[] {
  // With a user namespace, idmapped: the machine's root writes as the host's root does.
  const idmap = settings.privateUsers ? { idmap: true } : {};
  const binds: Bind[] = [{ source: cacheDir(settings), target: cacheDir(settings), readOnly: false, ...idmap }];
  if (settings.keepBuilds) binds.push({ source: buildsDir(settings), target: buildsDir(settings), readOnly: false, ...idmap });
  // mount(2) follows a symlinked source, so /usr/bin/gitlab-runner -> ... works as it is.
  if (runnerBinary) binds.push({ source: runnerBinary, target: runnerBinaryTarget, readOnly: true });
  return binds;
}
