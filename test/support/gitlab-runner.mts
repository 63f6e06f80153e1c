// The real gitlab-runner for the end-to-end tests. install-gitlab-runner.sh
// builds it from the source archive in ../shared/gitlab-runner/ and caches it
// by the archive's checksum, so after the first build a call only checks and
// prints the path; NSPAWN_RUNNER_TEST_GITLAB_RUNNER=/path uses another binary.
// A runner that cannot be built fails the suite with the build's reason: the
// README's claims about gitlab-runner stand on it. The one way around it is an
// explicit opt-out, NSPAWN_RUNNER_TEST_NO_GITLAB_RUNNER=1, for machines
// without Go.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { stringify } from 'smol-toml';
import type { RunnerSection } from './runner-config.mts';

const installScript = fileURLToPath(new URL('./install-gitlab-runner.sh', import.meta.url));

/** Why the run-single suite is skipped, or false: only when the user opted out. */
export const gitlabRunnerOptOut = process.env.NSPAWN_RUNNER_TEST_NO_GITLAB_RUNNER === '1'
  ? 'NSPAWN_RUNNER_TEST_NO_GITLAB_RUNNER=1: the real gitlab-runner was not built'
  : false;

let installing: Promise<string> | undefined;

/** The binary's path; builds it the first time (minutes), rejects with the build's reason. */
export function gitlabRunnerBinary(): Promise<string> {
  installing ??= install();
  return installing;
}

async function install(): Promise<string> {
  const given = process.env.NSPAWN_RUNNER_TEST_GITLAB_RUNNER;
  if (given) {
    try {
      accessSync(given, constants.X_OK);
    } catch (error) {
      throw new Error(`NSPAWN_RUNNER_TEST_GITLAB_RUNNER=${given}: ${(error as Error).message}`);
    }
    return given;
  }
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(installScript, [], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
    // Progress of a build that takes minutes, shown as it happens.
    child.stderr.setEncoding('utf8').on('data', (text: string) => { err += text; process.stderr.write(text); });
    child.on('error', reject);
    child.on('close', (exitCode) => resolve({ code: exitCode ?? -1, stdout: out, stderr: err }));
  });
  if (code !== 0) {
    throw new Error(`test/support/install-gitlab-runner.sh could not build gitlab-runner (exit ${code}):\n${stderr.trim()}\n` +
      'Without Go, NSPAWN_RUNNER_TEST_NO_GITLAB_RUNNER=1 skips the run-single suite.');
  }
  return stdout.trim();
}

/** gitlab-runner run-single with our [[runners]] section as its config.toml: one job, then it exits. */
export async function runSingle(binary: string, runner: RunnerSection): Promise<string> {
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
