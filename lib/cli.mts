// What every script shares: argument parsing with the global options, --help,
// the log level, and the only place that decides exit codes.
import minimist from 'minimist';
import { buildFailureExitCode, systemFailureExitCode } from './contract.mts';
import { RunnerError, ScriptFailed, SystemError, UsageError } from './errors.mts';
import { log, setLogLevel } from './log.mts';
import { loadSettings, type Settings } from './settings.mts';

export interface CommandSpec {
  name: string;
  summary: string;
  /** Arguments after the command name, as shown in --help. */
  usage: string;
  /** Lines describing the command's own options. */
  options?: string[];
  string?: string[];
  boolean?: string[];
  alias?: Record<string, string>;
  /** String options that may be given more than once: always arrays. */
  repeatable?: string[];
  /** Most commands create machines or images: they need root. */
  needsRoot?: boolean;
  /**
   * A bad configuration does not stop the command: each problem is passed to
   * the action and the bad key keeps its default (doctor reports them).
   */
  lenientConfig?: boolean;
}

export type ParsedArgs = minimist.ParsedArgs;

const globalHelp = [
  '  -v, --verbose          say what is done',
  '      --debug            also print every command run',
  '      --root DIR         state directory (default /var/lib/nspawn-runner, env NSPAWN_RUNNER_ROOT)',
  '      --config FILE      configuration file (default /etc/nspawn-runner/nspawn-runner.conf)',
  '      --backend NAME     storage backend: auto, btrfs, overlay, tmpfs (env NSPAWN_RUNNER_BACKEND)',
  '      --host NAME        host mode: auto, systemd, direct (env NSPAWN_RUNNER_HOST)',
  '  -h, --help             show this help',
];

export function helpText(spec: CommandSpec): string {
  const lines = [`usage: nspawn-runner ${spec.name} ${spec.usage}`.trimEnd(), '', spec.summary, ''];
  if (spec.options?.length) lines.push('options:', ...spec.options, '');
  lines.push('global options:', ...globalHelp);
  return `${lines.join('\n')}\n`;
}

export function parseArgs(spec: CommandSpec, argv: string[]): ParsedArgs {
  const known = new Set(['verbose', 'debug', 'help', 'root', 'config', 'backend', 'host', 'v', 'h', '_', '--',
    ...(spec.string ?? []), ...(spec.boolean ?? []), ...(spec.repeatable ?? []), ...Object.keys(spec.alias ?? {}), ...Object.values(spec.alias ?? {})]);
  const args = minimist(argv, {
    string: ['root', 'config', 'backend', 'host', ...(spec.string ?? []), ...(spec.repeatable ?? [])],
    boolean: ['verbose', 'debug', 'help', ...(spec.boolean ?? [])],
    alias: { v: 'verbose', h: 'help', ...spec.alias },
    '--': true,
    unknown: (option) => {
      if (option.startsWith('-') && !known.has(option.replace(/^--?/, '').split('=')[0]!)) {
        throw new UsageError(`${spec.name}: unknown option ${option}`);
      }
      return true;
    },
  });
  for (const name of ['root', 'config', 'backend', 'host', ...(spec.string ?? [])]) {
    if (Array.isArray(args[name])) throw new UsageError(`${spec.name}: --${name} given twice`);
  }
  for (const name of spec.repeatable ?? []) {
    const value: unknown = args[name];
    args[name] = value === undefined ? [] : Array.isArray(value) ? value : [value];
  }
  return args;
}

/**
 * Runs a command: parses argv, handles --help, loads settings, and maps what
 * it throws to the exit codes gitlab-runner understands. Only this exits.
 */
export async function main(
  spec: CommandSpec,
  action: (args: ParsedArgs, settings: Readonly<Settings>, configProblems: SystemError[]) => Promise<number | void>,
): Promise<never> {
  let code: number;
  try {
    const args = parseArgs(spec, process.argv.slice(2));
    if (args.debug) setLogLevel('debug');
    else if (args.verbose) setLogLevel('verbose');
    if (args.help) {
      process.stdout.write(helpText(spec));
      process.exit(0);
    }
    if (spec.needsRoot && process.getuid?.() !== 0) {
      throw new SystemError(`${spec.name} must run as root`, 'run it from gitlab-runner as root, or with sudo');
    }
    const problems: SystemError[] = [];
    const settings = await loadSettings({ root: args.root, config: args.config, backend: args.backend, host: args.host },
      process.env, spec.lenientConfig ? (problem) => problems.push(problem) : undefined);
    code = (await action(args, settings, problems)) ?? 0;
  } catch (error) {
    code = reportError(error);
  }
  process.exit(code);
}

export function reportError(error: unknown): number {
  if (error instanceof ScriptFailed) {
    log.verbose(error.message);
    return buildFailureExitCode();
  }
  if (error instanceof RunnerError) {
    log.error(error.hint ? `${error.message} (${error.hint})` : error.message);
    return error.kind === 'job' ? buildFailureExitCode() : systemFailureExitCode();
  }
  const errno = error as NodeJS.ErrnoException;
  const hint = errnoHints[errno.code ?? ''];
  log.error(hint ? `${errno.message} (${hint})` : String(errno.message ?? error));
  if (errno.stack) log.debug(errno.stack);
  return systemFailureExitCode();
}

const errnoHints: Record<string, string> = {
  EACCES: 'run as root',
  EPERM: 'run as root',
  ENOSPC: 'the disk is full: free space in the state directory',
  EROFS: 'the state directory is on a read-only filesystem',
  EDQUOT: 'the disk quota is exhausted',
};
