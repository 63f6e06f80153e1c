// The one place that starts host processes, in two ways.
//
// zx's $ for host commands where start-up time does not matter: image
// creation, maintenance, playbooks, logins, copies. Commands read like the
// shell they replace, with every ${} value quoted by zx. zx is imported on
// first use: `import('zx/core')` costs about 30 ms under Bun (`zx` whole: 75),
// more than a whole config stage, so the stage hot path (config, prepare, run,
// cleanup) never loads it.
//
// run()/check()/runAttached(): a lean spawn of an argv array, for the
// commands the stages themselves run (systemctl and machinectl on systemd
// hosts, btrfs snapshots, the tmpfs mount, umount) and for ssh sessions,
// where every millisecond is paid on every job. Both log the command
// shell-quoted at debug level before it runs, so a failing step can be
// replayed by hand.
import type { SpawnOptions, StdioOptions } from 'node:child_process';
import { constants } from 'node:os';
import type { Options, ProcessOutput, Shell } from 'zx/core';
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
  ip: 'iproute2',
  debootstrap: 'debootstrap',
  mmdebstrap: 'mmdebstrap',
  btrfs: 'btrfs-progs',
  'ansible-playbook': 'ansible-core',
  eatmydata: 'eatmydata',
  skopeo: 'skopeo',
  pasta: 'passt',
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
  /** Receives stdout and stderr as they come, instead of collecting them (image/progress.mts). */
  onOutput?: (chunk: string) => void;
}

export interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * node:child_process, loaded on first use: under Bun its module and the
 * Node streams of a child's pipes cost about 15 ms before the first child
 * runs, which Bun's own spawn (runCaptured) does not.
 */
const childProcess = () => process.getBuiltinModule('node:child_process');

/** Bun.spawn, as much of it as runCaptured uses; there when Bun runs us (the product does, the tests run on Node). */
interface BunSpawner {
  spawn(argv: string[], options: {
    env: NodeJS.ProcessEnv; cwd: string | undefined; stdin: 'ignore' | Uint8Array; stdout: 'pipe'; stderr: 'pipe';
  }): { stdout: ReadableStream<Uint8Array>; stderr: ReadableStream<Uint8Array>; exited: Promise<number>; exitCode: number | null; signalCode: NodeJS.Signals | null };
}

const bun = (globalThis as { Bun?: BunSpawner }).Bun;

/**
 * Runs argv to completion. By default stdout and stderr are captured; pass
 * stdio to stream them instead. Never throws for a non-zero exit: see check().
 */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  log.debug(`+ ${shellJoin(argv)}`);
  if (bun && options.stdio === undefined && options.onOutput === undefined) return runCaptured(bun, argv, options);
  const stdio = options.stdio ?? [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'];
  const spawnOptions: SpawnOptions = { env: options.env ?? process.env, cwd: options.cwd, stdio };
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(argv[0]!, argv.slice(1), spawnOptions);
    let stdout = '';
    let stderr = '';
    const onOutput = options.onOutput;
    child.stdout?.setEncoding('utf8').on('data', onOutput ?? ((chunk: string) => (stdout += chunk)));
    child.stderr?.setEncoding('utf8').on('data', onOutput ?? ((chunk: string) => (stderr += chunk)));
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' ? missingBinaryError(argv[0]!) : error));
    child.on('close', (code, signal) => resolve({ code: code ?? 128, signal, stdout, stderr }));
  });
}

/** run() on Bun with captured output: the same result, from Bun's own spawn. */
async function runCaptured(spawner: BunSpawner, argv: readonly string[], options: RunOptions): Promise<RunResult> {
  let child: ReturnType<BunSpawner['spawn']>;
  try {
    child = spawner.spawn([...argv], {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdin: options.input === undefined ? 'ignore' : new TextEncoder().encode(options.input),
      stdout: 'pipe',
      stderr: 'pipe',
    });
  } catch (error) {
    // Bun refuses at once what Node reports in an 'error' event.
    throw (error as NodeJS.ErrnoException).code === 'ENOENT' ? missingBinaryError(argv[0]!) : error;
  }
  // Like Node's 'close': the output up to end-of-file, and the exit.
  const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code: child.exitCode ?? 128, signal: child.signalCode, stdout, stderr };
}

/**
 * run() for the few callers that cannot wait (a parser asking git a
 * question mid-way): captured output, never throws for a non-zero exit.
 */
export function runSync(argv: readonly string[], options: Pick<RunOptions, 'env' | 'cwd'> = {}): RunResult {
  log.debug(`+ ${shellJoin(argv)}`);
  const result = childProcess().spawnSync(argv[0]!, argv.slice(1), { env: options.env ?? process.env, cwd: options.cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw missingBinaryError(argv[0]!);
  return { code: result.status ?? 128, signal: result.signal, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
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
  const child = childProcess().spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env });
  for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(name, () => child.kill(name));
  return new Promise((resolve, reject) => {
    child.on('error', (error: NodeJS.ErrnoException) => reject(error.code === 'ENOENT' ? missingBinaryError(argv[0]!) : error));
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}

/** zx's $ as this project uses it: `await $\`cmd -- ${value}\``, or `$({ nothrow: true })\`...\``. */
export interface HostShell {
  (pieces: TemplateStringsArray, ...values: unknown[]): Promise<ProcessOutput>;
  (options: Partial<Options>): HostShell;
}

let zxCore: Promise<typeof import('zx/core')> | undefined;

/** Whether name is a program on PATH (zx's which). */
export async function haveCommand(name: string): Promise<boolean> {
  const { which } = await (zxCore ??= import('zx/core'));
  return (await which(name, { nothrow: true })) !== null;
}

/**
 * zx's $, loaded on first use. Failures become SystemErrors that name the
 * program and its last lines of stderr; a program that is not installed
 * names its Debian package, as with run().
 */
export async function zx(): Promise<HostShell> {
  const core = await (zxCore ??= import('zx/core'));
  // zx takes defaults for these from ZX_* variables in the environment; ours
  // are fixed here, so the environment cannot change how host commands run.
  const fixed: Partial<Options> = {
    // By path: a PATH without bash (as in the missing-binary tests) still runs commands.
    shell: '/bin/bash',
    prefix: 'set -euo pipefail;',
    postfix: '',
    quote: core.quote,
    cwd: process.cwd(),
    preferLocal: false,
    detached: false,
    timeout: 0,
    timeoutSignal: 'SIGTERM',
    killSignal: 'SIGTERM',
    // Output is captured (or passed on with stdio); our logger only echoes the commands.
    verbose: false,
    quiet: true,
    log: (entry) => {
      if (entry.kind === 'cmd') log.debug(`+ ${entry.cmd}`);
    },
  };
  return hostShell(core, core.$(fixed), process.env);
}

function hostShell(core: typeof import('zx/core'), $: Shell, env: NodeJS.ProcessEnv): HostShell {
  return ((first: TemplateStringsArray | Partial<Options>, ...values: unknown[]) => {
    if (!Array.isArray(first)) {
      const options = first as Partial<Options>;
      return hostShell(core, $(options), options.env ?? env);
    }
    const promise = $(first as TemplateStringsArray, ...values);
    const program = /^[\w@%+=:,./-]+/.exec(promise.cmd)?.[0] ?? promise.cmd;
    // bash says 127 for a command it cannot find; which tells whether that was ours.
    const checkFound = (output: ProcessOutput): ProcessOutput => {
      if (output.exitCode === 127 && !core.which.sync(program, { nothrow: true, path: env.PATH })) throw missingBinaryError(program);
      return output;
    };
    return promise.then(checkFound, (error: unknown) => {
      if (!(error instanceof core.ProcessOutput)) throw error;
      checkFound(error);
      const detail = error.stderr.trim().split('\n').slice(-3).join(' / ');
      const how = error.signal ? `was killed by ${error.signal}` : `exited with ${error.exitCode}`;
      throw new SystemError(`${program} ${how}${detail ? `: ${detail}` : ''}`);
    });
  }) as HostShell;
}
