// Runs bin/nspawn-runner the way gitlab-runner does: a child process with an
// environment, stdout and stderr captured, the exit code returned.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const executable = `${repoRoot}/bin/nspawn-runner`;

export interface RunnerResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunnerOptions {
  env?: NodeJS.ProcessEnv;
  /** Also copy the output to the test's stderr (long steps show progress). */
  stream?: boolean;
  /** Run as this uid instead of root (through setpriv). */
  asUser?: number;
  /** Another copy of bin/nspawn-runner. */
  executable?: string;
}

/** gitlab-runner's own values are 1 and 2; distinct ones prove they are read from the environment. */
export const buildFailure = 42;
export const systemFailure = 43;

export function runner(args: string[], options: RunnerOptions = {}): Promise<RunnerResult> {
  return new Promise((resolve, reject) => {
    const program = options.executable ?? executable;
    const argv = options.asUser
      ? ['setpriv', `--reuid=${options.asUser}`, `--regid=${options.asUser}`, '--clear-groups', '--', program, ...args]
      : [program, ...args];
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, BUILD_FAILURE_EXIT_CODE: String(buildFailure), SYSTEM_FAILURE_EXIT_CODE: String(systemFailure), ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: '/',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; if (options.stream) process.stderr.write(chunk); });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; if (options.stream) process.stderr.write(chunk); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
