// The one place that starts host processes. Commands are argv arrays, never
// strings; each is logged shell-quoted at debug level before it runs, so a
// failing step can be replayed by hand.
import { spawn, type SpawnOptions, type StdioOptions } from 'node:child_process';
import { constants } from 'node:os';
import { SystemError } from './errors.mts';
import { log } from './log.mts';

/** Debian packages that ship the binaries we call: named in "not found" errors. */
const packageOf: Record<string, string> = {
  'systemd-nspawn': 'systemd-container',
  machinectl: 'systemd-container',
  'systemd-run': 'systemd',
  systemctl: 'systemd',
  journalctl: 'systemd',
  nsenter: 'util-linux',
  unshare: 'util-linux',
  debootstrap: 'debootstrap',
  mmdebstrap: 'mmdebstrap',
  btrfs: 'btrfs-progs',
  'ansible-playbook': 'ansible-core',
  eatmydata: 'eatmydata',
  skopeo: 'skopeo',
  umoci: 'umoci',
};

export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

export function missingBinaryError(binary: string): SystemError {
  const pkg = packageOf[binary];
  return new SystemError(`${binary} not found`, pkg ? `install the Debian package ${pkg}` : `install ${binary}`);
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  stdio?: StdioOptions;
  /** Text fed to the child's stdin. */
  input?: string;
}

export interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs argv to completion. By default stdout and stderr are captured; pass
 * stdio to stream them instead. Never throws for a non-zero exit: see check().
 */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  log.debug(`+ ${shellJoin(argv)}`);
  const stdio = options.stdio ?? [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'];
  const spawnOptions: SpawnOptions = { env: options.env ?? process.env, cwd: options.cwd, stdio };
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), spawnOptions);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' ? missingBinaryError(argv[0]!) : error));
    child.on('close', (code, signal) => resolve({ code: code ?? 128, signal, stdout, stderr }));
  });
}

/** Runs argv and throws a SystemError naming the command when it fails. */
export async function check(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const result = await run(argv, options);
  if (result.code !== 0 || result.signal) {
    const detail = result.stderr.trim().split('\n').slice(-3).join(' / ');
    const how = result.signal ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    throw new SystemError(`${argv[0]} ${how}${detail ? `: ${detail}` : ''}`);
  }
  return result;
}

/**
 * Runs argv on our own stdin/stdout/stderr (a person's terminal, an ssh
 * connection), with a clean environment, passing our termination signals on.
 * Resolves to its exit code, 128 + N when signal N ended it.
 */
export function runAttached(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  log.debug(`+ ${shellJoin(argv)}`);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env });
  for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(name, () => child.kill(name));
  return new Promise((resolve, reject) => {
    child.on('error', (error: NodeJS.ErrnoException) => reject(error.code === 'ENOENT' ? missingBinaryError(argv[0]!) : error));
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}
