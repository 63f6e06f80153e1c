// Who plays gitlab-runner in the end-to-end tests: the real binary built by
// install-gitlab-runner.sh when it could be built, and always the simulated
// runner (simulated-runner.mts), which follows gitlab-runner's custom
// executor code. Both drive the same jobs against the same coordinator.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { stringify } from 'smol-toml';
import type { RunnerSection } from './runner-config.mts';
import { simulateRunSingle } from './simulated-runner.mts';

export interface RunnerDriver {
  name: string;
  /** Why this driver cannot run here, or false. */
  skip: string | false;
  /** Takes one job from the coordinator, runs it to the end; returns the runner's own log. */
  runJob(runner: RunnerSection): Promise<string>;
}

const installScript = fileURLToPath(new URL('./install-gitlab-runner.sh', import.meta.url));
const standin = fileURLToPath(new URL('./standin-gitlab-runner', import.meta.url));

/** Where install-gitlab-runner.sh caches the binary; its version is pinned in that script only. */
export function gitlabRunnerBinary(): { binary?: string; skip: string | false } {
  if (process.env.NSPAWN_RUNNER_TEST_GITLAB_RUNNER) return { binary: process.env.NSPAWN_RUNNER_TEST_GITLAB_RUNNER, skip: false };
  const version = /^version=(\S+)$/m.exec(readFileSync(installScript, 'utf8'))![1];
  const dest = `${process.env.NSPAWN_RUNNER_TEST_CACHE ?? '/var/cache/nspawn-runner-tests'}/gitlab-runner-${version}`;
  if (existsSync(`${dest}/gitlab-runner`)) return { binary: `${dest}/gitlab-runner`, skip: false };
  const blocked = existsSync(`${dest}/blocked`) ? `: ${readFileSync(`${dest}/blocked`, 'utf8').trim().split('\n').slice(0, 3).join(' / ')}` : '';
  return { skip: `no gitlab-runner binary (test/support/install-gitlab-runner.sh${blocked ? ` reported${blocked}` : ' has not run'})` };
}

export function runnerDrivers(): RunnerDriver[] {
  const { binary, skip } = gitlabRunnerBinary();
  return [
    { name: 'gitlab-runner run-single', skip, runJob: (runner) => runSingle(binary!, runner) },
    { name: 'the simulated runner', skip: false, runJob: simulate },
  ];
}

/** gitlab-runner run-single with our [[runners]] section as its config.toml. */
async function runSingle(binary: string, runner: RunnerSection): Promise<string> {
  const dir = mkdtempSync(`${tmpdir()}/nsr-glr-`);
  try {
    writeFileSync(`${dir}/config.toml`, stringify({ concurrent: 1, check_interval: 1, runners: [runner] }));
    const args = ['run-single', '--config', `${dir}/config.toml`, '--runner', runner.name, '--max-builds', '1', '--wait-timeout', '30'];
    return await new Promise((resolve, reject) => {
      const child = spawn(binary, args, { cwd: dir, env: { ...process.env, HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
      child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
      child.on('error', reject);
      child.on('close', () => resolve(output));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The stand-in helper is found the way prepare finds a real gitlab-runner
 * whose parent is not gitlab-runner: as `gitlab-runner` in PATH.
 */
async function simulate(runner: RunnerSection): Promise<string> {
  const dir = mkdtempSync(`${tmpdir()}/nsr-sim-`);
  try {
    mkdirSync(`${dir}/bin`);
    symlinkSync(standin, `${dir}/bin/gitlab-runner`);
    return await simulateRunSingle(runner, { ...process.env, PATH: `${dir}/bin:${process.env.PATH}` });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
