// Pure builders for systemd-nspawn command lines, shared by both host modes.
// Each storage backend contributes only its own flags (the original's trick).
import { readdirSync } from 'node:fs';
import { run } from './exec.mts';
import type { NetworkChoice } from './settings.mts';

export interface Bind {
  source: string;
  target: string;
  readOnly: boolean;
  /** Map the host's users onto the machine's (with private users only). */
  idmap?: boolean;
}

export interface NspawnOptions {
  machine: string;
  /** Flags from the storage backend: --directory, --overlay, --ephemeral, ... */
  storageArgs: readonly string[];
  /** Boot the image's init (systemd hosts), or run a reaper with the payload as PID 2. */
  boot: boolean;
  /** The payload's argv, or with boot the arguments of the image's init. */
  payload: readonly string[];
  /** Register with machined (systemd hosts only). */
  register: boolean;
  binds: readonly Bind[];
  systemdVersion: number;
  /** Run the machine under a personality, such as x86 for i386 images. */
  personality?: string;
  network: NetworkChoice;
  /** Join this network namespace (a job's pod, services/pod.mts) instead of network. */
  networkNamespace?: string;
  /** How the payload runs (service machines): NAME=VALUE entries, working directory, user. */
  payloadEnv?: readonly string[];
  workdir?: string;
  user?: string;
  /** Every capability; the caller also turns nspawn's seccomp filter off (privilegedEnv). */
  privileged?: boolean;
}

export function buildNspawnArgs(options: NspawnOptions): string[] {
  const args = [
    'systemd-nspawn',
    '--quiet',
    `--machine=${options.machine}`,
    ...options.storageArgs,
    // Journals of throw-away machines are not worth linking into the host's.
    '--link-journal=no',
    ...options.binds.map(bindArg),
  ];
  if (options.register) {
    args.push('--register=yes', '--keep-unit');
  } else {
    // Without a system bus, nspawn can neither register nor make a scope unit.
    args.push('--register=no', '--keep-unit');
  }
  // Syncs from a throw-away machine only slow the host down (systemd >= 250).
  // It is a seccomp filter, which a privileged machine has none of.
  if (options.systemdVersion >= 250 && !options.privileged) args.push('--suppress-sync=yes');
  if (options.personality) args.push(`--personality=${options.personality}`);
  if (options.networkNamespace) {
    // The pod binds its own /etc/resolv.conf (services/pod.mts).
    args.push(`--network-namespace-path=${options.networkNamespace}`, '--resolv-conf=off');
  } else {
    args.push(...networkArgs(options.network));
  }
  for (const entry of options.payloadEnv ?? []) args.push(`--setenv=${entry}`);
  if (options.workdir) args.push(`--chdir=${options.workdir}`);
  if (options.user) args.push(`--user=${options.user}`);
  if (options.privileged) args.push('--capability=all');
  if (options.boot) {
    // Stopping a throw-away machine means killing it: with SIGKILL instead
    // of a clean shutdown (SIGRTMIN+3), no service or stage process that
    // ignores SIGTERM can hold cleanup for minutes.
    args.push('--boot', '--notify-ready=yes', '--kill-signal=SIGKILL');
  } else {
    // --as-pid2 puts nspawn's stub init at PID 1: it reaps the orphans of
    // every stage, which a payload at PID 1 would not.
    args.push('--console=pipe', '--as-pid2');
  }
  args.push('--', ...options.payload);
  return args;
}

export interface ImageNspawnOptions {
  /** interactive for a person at a terminal, pipe for ansible and scripted commands. */
  console: 'interactive' | 'pipe';
  personality?: string;
  /** The image's name: the container's hostname, instead of the version directory's. */
  image?: string;
}

/** An image name as a host name: "_" and "+" are not allowed there (RFC 1123). */
export function hostnameFor(image: string): string {
  return image.replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 63).replace(/^[.-]+|[.-]+$/g, '') || 'image';
}

/**
 * Flags for a container of an image tree itself (maintenance, chroot-login):
 * one command, no machine kept. --register=no --keep-unit work with and
 * without systemd as PID 1 (without it there is no bus to register on).
 */
export function imageNspawnFlags(options: ImageNspawnOptions): string[] {
  return [
    '--quiet',
    `--console=${options.console}`,
    '--register=no',
    '--keep-unit',
    '--link-journal=no',
    ...(options.image ? [`--machine=${hostnameFor(options.image)}`] : []),
    ...(options.personality ? [`--personality=${options.personality}`] : []),
  ];
}

/** A shell (or command) in the image tree at directory. */
export function buildImageShellArgs(directory: string, options: ImageNspawnOptions, command: readonly string[] = []): string[] {
  return ['systemd-nspawn', ...imageNspawnFlags(options), `--directory=${directory}`, ...(command.length ? ['--', ...command] : [])];
}

function networkArgs(network: NetworkChoice): string[] {
  if (network === 'private') return ['--private-network'];
  if (network === 'veth') return ['--network-veth'];
  if (network.startsWith('zone:')) return [`--network-zone=${network.slice('zone:'.length)}`];
  return [];
}

function bindArg(bind: Bind): string {
  const flag = bind.readOnly ? '--bind-ro' : '--bind';
  return `${flag}=${escapeColons(bind.source)}:${escapeColons(bind.target)}${bind.idmap ? ':idmap' : ''}`;
}

/** nspawn splits --bind and --overlay values on ":", a backslash escapes one. */
export function escapeColons(path: string): string {
  return path.replaceAll('\\', '\\\\').replaceAll(':', '\\:');
}

/**
 * The environment that turns nspawn's seccomp filter off for a privileged
 * machine (systemd-nspawn(1), $SYSTEMD_SECCOMP), as the original's
 * ENABLE_SECCOMP = False did.
 */
export function privilegedEnv(privileged: boolean): Record<string, string> {
  return privileged ? { SYSTEMD_SECCOMP: '0' } : {};
}

/** Whether an nspawn command line names path: as given, or with its colons escaped. */
export function namesPath(commandLine: string, path: string): boolean {
  return commandLine.includes(path) || commandLine.includes(escapeColons(path));
}

let cachedVersion: number | undefined;

/** Where distributions put systemd's private shared library, whose name carries the version. */
const libraryDirs = ['/usr/lib/x86_64-linux-gnu/systemd', '/usr/lib/aarch64-linux-gnu/systemd', '/usr/lib/systemd', '/usr/lib64/systemd'];

/**
 * systemd's version, from the name of its shared library (a directory read),
 * falling back to asking systemd-nspawn (a process start) when that fails.
 */
export async function systemdVersion(): Promise<number> {
  if (cachedVersion !== undefined) return cachedVersion;
  for (const dir of libraryDirs) {
    try {
      const library = readdirSync(dir).find((name) => /^libsystemd-shared-\d+\.so$/.test(name));
      if (library) return (cachedVersion = Number(/(\d+)/.exec(library)![1]));
    } catch {
      // not this distribution's layout
    }
  }
  // In prepare: the lean run(), not zx (~30 ms to import, exec.mts).
  const result = await run(['systemd-nspawn', '--version']);
  return (cachedVersion = Number(/systemd (\d+)/.exec(result.stdout)?.[1] ?? 0));
}

/**
 * nspawn's complaint on exit where /run is no tmpfs (NOTES: harmless): never
 * worth showing as a machine's output or as why it failed.
 */
export function isNspawnNoise(line: string): boolean {
  return line.startsWith('Attempted to remove disk file system under "/run/systemd/nspawn/propagate/');
}
