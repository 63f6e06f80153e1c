// `nspawn-runner exec` of a one-line job, next to gitlab-ci-local's shell
// executor running the same job on the host, both from the command line the
// way a developer types them, in the same checkout. exec starts a fresh
// machine from an image; gitlab-ci-local runs the script in the host's
// shell. Prints medians and the ratio; asserts nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import minimist from 'minimist';
import { createSubvolume, isBtrfs } from '../lib/btrfs.mts';
import { makeBusyboxImage } from '../test/support/images.mts';
import { testCache } from '../test/support/test-cache.mts';
import { median } from './timing.mts';

const args = minimist(process.argv.slice(2), { string: ['runs'], boolean: ['help'] });
if (args.help) {
  process.stdout.write('usage: npm run bench:exec -- [--runs N]\n' +
    'Times `nspawn-runner exec JOB` of a one-line job (busybox image, and the test cache\'s Debian image when present)\n' +
    'against `gitlab-ci-local JOB` (shell executor) in the same checkout.\n');
  process.exit(0);
}
const runs = Number(args.runs ?? 10);
const repoRoot = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
const executable = `${repoRoot}/bin/nspawn-runner`;
const gitlabCiLocal = `${repoRoot}/node_modules/.bin/gitlab-ci-local`;

function timed(argv: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(argv[0]!, argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0 || !result.stdout.includes('one line')) throw new Error(`${argv.join(' ')} failed: ${result.stdout}${result.stderr}`);
  return ms;
}


const work = mkdtempSync(`${tmpdir()}/nsr-bench-exec-`);
try {
  const root = `${work}/state`;
  spawnSync('mkdir', ['-p', root]);
  if (isBtrfs(root)) await createSubvolume(`${root}/busybox`);
  makeBusyboxImage(`${root}/busybox`);
  const checkout = `${work}/project`;
  spawnSync('mkdir', ['-p', checkout]);
  writeFileSync(`${checkout}/.gitlab-ci.yml`, 'job:\n  script:\n    - echo one line\n');
  const git = (...gitArgs: string[]) => spawnSync('git', gitArgs, { cwd: checkout, env: { ...process.env, GIT_AUTHOR_NAME: 'b', GIT_AUTHOR_EMAIL: 'b@example.invalid', GIT_COMMITTER_NAME: 'b', GIT_COMMITTER_EMAIL: 'b@example.invalid' } });
  git('init', '-q', '-b', 'main');
  git('add', '.');
  git('commit', '-qm', 'bench');
  const home = `${work}/home`;
  spawnSync('mkdir', ['-p', home]);
  const gclEnv = { ...process.env, HOME: home, NO_COLOR: '1' };

  const debianRoot = `${testCache}/state`;
  const commands: Array<[string, string[], NodeJS.ProcessEnv?]> = [
    ['nspawn-runner exec job (busybox)', [executable, '--root', root, 'exec', '--default-image', 'busybox', 'job']],
    ...(existsSync(`${debianRoot}/bookworm/usr/bin/bash`)
      ? [['nspawn-runner exec job (Debian bookworm)', [executable, '--root', debianRoot, 'exec', '--default-image', 'bookworm', 'job']] as [string, string[]]]
      : []),
    ['gitlab-ci-local job (shell executor)', [gitlabCiLocal, 'job'], gclEnv],
    ['gitlab-ci-local job, no schema validation', [gitlabCiLocal, '--json-schema-validation=false', 'job'], gclEnv],
  ];
  const results: Array<[string, number]> = [];
  for (const [name, argv, env] of commands) {
    timed(argv, checkout, env); // warm: page cache, gitlab-ci-local's state directory
    const times = Array.from({ length: runs }, () => timed(argv, checkout, env));
    results.push([name, median(times)]);
  }
  const reference = results.find(([name]) => name === 'gitlab-ci-local job (shell executor)')![1];
  process.stdout.write(`median of ${runs} runs, one-line job, from the command line\n`);
  for (const [name, ms] of results) {
    process.stdout.write(`${name.padEnd(46)} ${ms.toFixed(0).padStart(6)} ms   ${(ms / reference).toFixed(2)}x gitlab-ci-local\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
