// The corpus of .gitlab-ci.yml files in test/fixtures/gitlab-ci/: each
// directory is a project (its .gitlab-ci.yml, included files, files that
// rules: exists looks for) with cases.json, the pipelines GitLab's semantics
// give it on a branch with some variables set. checkoutFixture makes a git
// checkout of one, as exec and gitlab-ci-local both need.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { listJobs } from '../../lib/ci/list.mts';
import { loadProject } from '../../lib/ci-local/exec.mts';
import { loadSettings } from '../../lib/settings.mts';
import { repoRoot } from './runner.mts';

export const fixturesDir = `${repoRoot}/test/fixtures/gitlab-ci`;

export type ExpectedJob = [name: string, stage: string, when: string, allowFailure: boolean | { exit_codes: number[] }, needs: string[] | null];

export interface FixtureCase {
  case: string;
  branch: string;
  variables?: Record<string, string>;
  jobs: ExpectedJob[];
}

export function fixtureNames(): string[] {
  return readdirSync(fixturesDir, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();
}

export function readCases(name: string): FixtureCase[] {
  return JSON.parse(readFileSync(`${fixturesDir}/${name}/cases.json`, 'utf8')) as FixtureCase[];
}

export const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 'exec test', GIT_AUTHOR_EMAIL: 'exec@example.invalid',
  GIT_COMMITTER_NAME: 'exec test', GIT_COMMITTER_EMAIL: 'exec@example.invalid',
};

export function gitIn(dir: string, args: string[]): string {
  return execFileSync('git', ['-c', 'safe.directory=*', ...args], { cwd: dir, env: gitEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** A git checkout of files (path -> content) on branch, one commit on main first. */
export function makeCheckout(files: Record<string, string>, branch = 'main', parent = tmpdir()): string {
  const dir = mkdtempSync(`${parent}/nsr-exec-repo-`);
  gitIn(dir, ['init', '-q', '-b', 'main']);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(`${dir}/${path}`), { recursive: true });
    writeFileSync(`${dir}/${path}`, content);
  }
  gitIn(dir, ['add', '-A']);
  gitIn(dir, ['commit', '-q', '--allow-empty', '-m', 'fixture']);
  if (branch !== 'main') gitIn(dir, ['checkout', '-q', '-b', branch]);
  return dir;
}

/** A checkout of fixture name on branch. */
export function checkoutFixture(name: string, branch: string): string {
  const dir = makeCheckout({}, 'main');
  cpSync(`${fixturesDir}/${name}`, dir, { recursive: true, filter: (source) => !source.endsWith('/cases.json') });
  gitIn(dir, ['add', '-A']);
  gitIn(dir, ['commit', '-q', '-m', name]);
  if (branch !== 'main') gitIn(dir, ['checkout', '-q', '-b', branch]);
  return dir;
}

/** exec --list of a checkout, in-process: the pipeline's jobs and its warnings. */
export async function listFixture(root: string, fixtureCase: FixtureCase, dir: string) {
  const settings = await loadSettings({ root });
  const project = await loadProject(settings, {
    cwd: dir, file: '.gitlab-ci.yml', selection: { jobs: [], needs: false, manual: [] }, list: true, json: true,
    concurrency: 1, dirty: false, defaultImage: undefined,
    variables: Object.entries(fixtureCase.variables ?? {}).map(([key, value]) => `${key}=${value}`),
  });
  return { jobs: listJobs(project.pipeline), warnings: project.pipeline.warnings };
}
