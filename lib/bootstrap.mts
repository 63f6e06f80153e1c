// Making Debian trees: debootstrap (or mmdebstrap) argv, the settings that
// feed it and where each comes from. Where a new tree goes and when it is
// published is the image store's business (image-store.mts, lifecycle.mts).
import { existsSync, mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { JobError, SystemError } from './errors.mts';
import { haveCommand, missingBinaryError, zx } from './exec.mts';
import { claimStaging } from './gc.mts';
import { imagePath, validateImageName } from './image.mts';
import { listJobRecords } from './job.mts';
import { log } from './log.mts';
import type { Bootstrapper, PlaybookVars } from './playbook.mts';
import { createSubvolume, isBtrfs, isSubvolume } from './btrfs.mts';
import { removeTree } from './mounts.mts';
import type { Settings } from './settings.mts';


export interface BootstrapOptions {
  suite: string;
  mirror?: string;
  /** Debian architecture, such as amd64 or i386. */
  arch?: string;
  /** Installed on top of the minimal base. */
  packages: string[];
  components?: string[];
  bootstrapper: Bootstrapper;
}

/** What a CI job needs (bash, git, TLS roots), what booting needs (systemd, dbus), what ansible needs (python3). */
export const basePackages = ['bash', 'git', 'ca-certificates', 'systemd', 'dbus', 'python3'];
export const fallbackSuite = 'unstable';

const suitePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const archPattern = /^[a-z0-9][a-z0-9-]*$/;
const packagePattern = /^[a-z0-9][a-z0-9+.:~-]*$/;
const mirrorPattern = /^(https?|file):\/\/\S+$|^\/\S*$/;

/** debootstrap takes no "--": every value that lands in its argv is checked here instead. */
export function validateBootstrapOptions(options: BootstrapOptions): BootstrapOptions {
  const bad = (what: string, value: string) => new SystemError(`invalid ${what} ${JSON.stringify(value)}`);
  if (!suitePattern.test(options.suite)) throw bad('suite', options.suite);
  if (options.arch !== undefined && !archPattern.test(options.arch)) throw bad('architecture', options.arch);
  if (options.mirror !== undefined && !mirrorPattern.test(options.mirror)) throw bad('mirror (want http://, https://, file:// or a path)', options.mirror);
  for (const name of [...options.packages, ...(options.components ?? [])]) {
    if (!packagePattern.test(name)) throw bad('package or component', name);
  }
  return options;
}

export function buildBootstrapArgs(options: BootstrapOptions, target: string, eatmydata: boolean): string[] {
  validateBootstrapOptions(options);
  const argv = eatmydata ? ['eatmydata'] : [];
  const packages = [...new Set([...basePackages, ...options.packages])].join(',');
  if (options.bootstrapper === 'mmdebstrap') {
    argv.push('mmdebstrap', '--variant=minbase', `--include=${packages}`, '--format=directory');
  } else {
    argv.push('debootstrap', '--variant=minbase', `--include=${packages}`);
  }
  if (options.arch) argv.push(`--arch=${options.arch}`);
  if (options.components?.length) argv.push(`--components=${options.components.join(',')}`);
  argv.push(options.suite, target);
  if (options.mirror) argv.push(options.mirror);
  return argv;
}

/** Where each creation setting can come from, strongest first. */
export interface CreateSources {
  commandLine?: Partial<BootstrapOptions>;
  playbook?: PlaybookVars;
  /** How the image was made last time: a recreate keeps it unless told otherwise. */
  recorded?: Partial<BootstrapOptions>;
}

/**
 * Settings for a new image: each from the command line, else the playbook,
 * else the previous creation, else the default. The suite falls back to
 * fallbackSuite (chroot-create) or is required (unattended maintenance: an
 * image silently made from unstable would surprise).
 */
export function resolveCreateOptions(sources: CreateSources, suiteFallback: string | undefined): BootstrapOptions {
  const layers = [sources.commandLine ?? {}, sources.playbook ?? {}, sources.recorded ?? {}];
  const pick = <K extends keyof BootstrapOptions>(key: K): BootstrapOptions[K] | undefined =>
    layers.map((layer) => (layer as Partial<BootstrapOptions>)[key]).find((value) => value !== undefined);
  const suite = pick('suite') ?? suiteFallback;
  if (suite === undefined) {
    throw new SystemError('no suite to bootstrap from', 'set nspawn_runner_chroot_suite in the image\'s playbook, or run chroot-create --suite');
  }
  const options: BootstrapOptions = {
    suite,
    packages: pick('packages') ?? [],
    bootstrapper: pick('bootstrapper') ?? 'debootstrap',
  };
  for (const key of ['mirror', 'arch', 'components'] as const) {
    const value = pick(key);
    if (value !== undefined) (options as unknown as Record<string, unknown>)[key] = value;
  }
  return validateBootstrapOptions(options);
}

/**
 * Bootstraps a Debian tree at target, which must not exist yet; the caller
 * removes it when this throws. On btrfs the tree is a subvolume, so jobs can
 * run on snapshots of it.
 */
export async function bootstrapTree(target: string, options: BootstrapOptions, label: string): Promise<void> {
  validateBootstrapOptions(options);
  if (!(await haveCommand(options.bootstrapper))) throw missingBinaryError(options.bootstrapper);
  // Both bootstrappers accept an existing empty target; mmdebstrap wants one.
  if (isBtrfs(target.slice(0, target.lastIndexOf('/')))) await createSubvolume(target);
  else if (options.bootstrapper === 'mmdebstrap') mkdirSync(target);
  const argv = buildBootstrapArgs(options, target, await haveCommand('eatmydata'));
  log.info(`${label}: ${options.bootstrapper} ${options.suite}${options.arch ? ` (${options.arch})` : ''}; progress follows`);
  // Progress goes to stderr: stdout is reserved for machine-readable output.
  const $ = await zx();
  const result = await $({ stdio: ['ignore', 2, 2], nothrow: true })`${argv}`;
  if (!result.ok) {
    throw new SystemError(`${options.bootstrapper} failed for ${label} (${result.signal ?? `exit ${result.exitCode}`})`,
      'see its output above; check the suite, mirror, architecture and network');
  }
  // debootstrap copies the build host's /etc/hostname; a booted machine
  // would then call itself after the host instead of run-<job id>.
  rmSync(`${target}/etc/hostname`, { force: true });
}

/**
 * Turns a plain-directory image into a btrfs subvolume, so its jobs run on
 * snapshots instead of overlays. The copy is made with reflinks (no data is
 * duplicated) beside the image and swapped in with two renames.
 */
export async function convertImageToSubvolume(settings: Settings, name: string): Promise<'converted' | 'already'> {
  const target = imagePath(settings, validateImageName(name));
  if (!existsSync(target)) throw new JobError(`image "${name}" not found at ${target}`);
  if (isSubvolume(target)) return 'already';
  if (!isBtrfs(settings.root)) throw new SystemError(`${settings.root} is not on btrfs: there is nothing to convert to`);
  const users = listJobRecords(settings).filter((record) => record.imagePath === realpathSync(target));
  if (users.length) {
    throw new SystemError(`image "${name}" is in use by job ${users.map((record) => record.jobId).join(', ')}`, 'retry when those jobs have finished');
  }
  const staging = `${settings.root}/.staging`;
  mkdirSync(staging, { recursive: true, mode: 0o700 });
  const workDir = mkdtempSync(`${staging}/${name}.`);
  claimStaging(workDir);
  try {
    await createSubvolume(`${workDir}/tree`);
    log.info(`copying image ${name} into a subvolume (reflinks, no data is duplicated)`);
    const $ = await zx();
    await $`cp -a --reflink=always -- ${`${target}/.`} ${`${workDir}/tree/`}`;
    renameSync(target, `${workDir}/old`);
    renameSync(`${workDir}/tree`, target);
    return 'converted';
  } finally {
    await removeTree(workDir);
  }
}
