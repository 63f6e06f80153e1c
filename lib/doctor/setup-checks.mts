// doctor: this installation's own set-up. The configuration file, the state
// directory and the storage it gives, the images, and gitlab-runner's
// config.toml.
import { accessSync, constants, existsSync, readFileSync, realpathSync, statfsSync } from 'node:fs';
import { chooseHostName } from '../host/select.mts';
import { checkImageAllowed, imagePath } from '../image/resolve.mts';
import { listImages, type ImageRow } from '../image/list.mts';
import { findPlaybook } from '../image/playbook.mts';
import type { Settings } from '../settings.mts';
import { backendFor, existingAncestor, findProgram, tryRun, type DoctorContext } from './context.mts';
import { error, ok, warning, type Finding } from './report.mts';

export async function checkConfigFile(ctx: DoctorContext): Promise<Finding[]> {
  const check = 'configuration';
  const problems = ctx.configProblems.map((problem) =>
    error(check, `${problem.message}: every command refuses to run`, problem.hint ?? 'see README.md, "Configuration"'));
  if (!existsSync(ctx.configFile)) return [...problems, ok(check, `no ${ctx.configFile}: the defaults apply`)];
  if (problems.length) return problems;
  const { readYamlFile } = await import('../yaml-file.mts');
  let document: unknown;
  try {
    document = readYamlFile(ctx.configFile);
  } catch (problem) {
    // Commands read it with Bun's parser, which lets some of this pass,
    // such as a key given twice, keeping its last value (settings.mts).
    return [warning(check, `${(problem as Error).message}; commands read it all the same, with Bun's YAML parser`,
      'fix it: what one parser lets pass another may read otherwise')];
  }
  const keys = document && typeof document === 'object' ? Object.keys(document) : [];
  return [ok(check, `${ctx.configFile} is valid; it sets ${keys.length ? keys.join(', ') : 'nothing'}`)];
}

/** statfs(2) magic numbers of the filesystems a state directory is likely on. */
const filesystems: Record<number, string> = {
  0x9123683e: 'btrfs', 0xef53: 'ext4', 0x58465342: 'xfs', 0x01021994: 'tmpfs', 0x794c7630: 'overlayfs', 0x2fc12fc1: 'zfs', 0x6969: 'nfs',
};

const gib = 1024 ** 3;

function formatGib(bytes: number): string {
  return `${(bytes / gib).toFixed(bytes < 10 * gib ? 1 : 0)} GiB`;
}

const storageMeaning: Record<string, string> = {
  btrfs: 'btrfs storage: each job runs on a writable snapshot of its image subvolume',
  overlay: 'overlay storage: each job writes to .jobs/ID/upper over the read-only image',
  tmpfs: 'tmpfs storage: each job writes to RAM over the read-only image',
};

export function checkStateDirectory(ctx: DoctorContext): Finding[] {
  const check = 'state directory';
  const { root } = ctx.settings;
  const dir = existingAncestor(root);
  const stats = statfsSync(dir);
  const type = filesystems[stats.type] ?? `filesystem 0x${stats.type.toString(16)}`;
  const free = stats.bavail * stats.bsize;
  const where = `${root}${dir === root ? '' : ` (not made yet; ${dir})`} on ${type}, ${formatGib(free)} free`;
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    return [error(check, `${where}: not writable, so no job can be prepared`, 'make it writable, or choose another with root: or --root')];
  }
  let backend: string;
  try {
    backend = backendFor(ctx.settings);
  } catch (problem) {
    return [error(check, `${where}: ${(problem as Error).message}: every prepare fails`, (problem as { hint?: string }).hint)];
  }
  const meaning = `${storageMeaning[backend]}${ctx.settings.backend === 'auto' ? ' (backend: auto)' : ` (backend: ${backend} is set)`}` +
    (backend === 'tmpfs' ? `, up to tmpfs_size ${ctx.settings.tmpfsSize} each` : '');
  const findings: Finding[] = [];
  if (backend !== 'btrfs' && type === 'overlayfs') {
    findings.push(error(check, `${where}: overlayfs cannot be the upper layer of the overlay each job writes to`,
      'put the state directory on ext4, xfs or btrfs (root: in the configuration, or --root)'));
  } else if (free < gib) {
    findings.push(error(check, `${where}: less than 1 GiB free, jobs will fail writing`, `free space in ${dir}`));
  } else if (free < 5 * gib) {
    findings.push(warning(check, `${where}: little room for images and jobs' writes`, `free space in ${dir}`));
  } else {
    findings.push(ok(check, where));
  }
  findings.push(ok('storage', meaning));
  return findings;
}

/** The default image: the configuration's, else config.toml's --default-image. */
function defaultImageOf(settings: Settings, runnerDefault: string | undefined): { name: string | undefined; from: string } {
  if (settings.defaultImage) return { name: settings.defaultImage, from: 'default_image in the configuration' };
  if (runnerDefault) return { name: runnerDefault, from: '--default-image in config.toml\'s prepare_args' };
  return { name: undefined, from: '' };
}

/** What the stage agent and gitlab-runner's scripts need in an image (job/stage-agent.mts). */
const imageTools = ['sh', 'bash', 'env', 'setsid', 'mkfifo', 'mv'];

/** Starts a throw-away, read-only machine of tree and asks for the tools a job needs. */
async function probeImage(ctx: DoctorContext, row: ImageRow): Promise<string | undefined> {
  const script = `for tool in ${imageTools.join(' ')}; do command -v "$tool" >/dev/null 2>&1 || echo "missing $tool"; done; echo probe-done`;
  const result = await tryRun(['systemd-nspawn', '--quiet', '--register=no', '--keep-unit', '--console=pipe', '--read-only',
    '--link-journal=no', `--machine=doctor-${process.pid}`, `--directory=${row.tree}`,
    ...(row.personality ? [`--personality=${row.personality}`] : []), '--', '/bin/sh', '-c', script], ctx.path);
  if (!result) return 'systemd-nspawn cannot run';
  if (!result.stdout.includes('probe-done')) return `a machine of it does not start: ${result.stderr.trim().split('\n').slice(-2).join(' / ') || `exit ${result.code}`}`;
  const missing = [...result.stdout.matchAll(/^missing (\S+)$/gm)].map((match) => match[1]);
  if (missing.length) return `it lacks ${missing.join(', ')}, which every job needs`;
  return undefined;
}

/** Image names that are Debian suites: the fix can bootstrap them by name. */
const debianSuites = ['bullseye', 'bookworm', 'trixie', 'forky', 'sid', 'unstable', 'testing', 'stable', 'oldstable'];

const initPaths = ['usr/lib/systemd/systemd', 'lib/systemd/systemd', 'sbin/init'];

export async function checkImages(ctx: DoctorContext, runnerDefault: string | undefined): Promise<Finding[]> {
  const rows = (await listImages(ctx.settings, false)).filter((row) => row.layout !== 'missing' || row.jobs.length);
  const present = rows.filter((row) => row.tree);
  const findings: Finding[] = [];
  const allowedNote = (name: string): string => {
    try {
      checkImageAllowed(ctx.settings, name);
      return '';
    } catch {
      return ' (not in allowed_images)';
    }
  };
  if (present.length) {
    findings.push(ok('images', present.map((row) => `${row.name} (${row.storage}${row.personality ? `, ${row.personality}` : ''})${allowedNote(row.name)}`).join(', ')));
  } else {
    findings.push(error('images', `no images in ${ctx.settings.root}: no job can run`, 'nspawn-runner chroot-create --suite bookworm bookworm'));
  }
  for (const row of present) {
    if (row.lastMaintenance && !row.lastMaintenance.ok) {
      findings.push(warning(`image ${row.name}`, `its last maintenance (${row.lastMaintenance.at}) failed: ${row.lastMaintenance.error ?? 'see its log'}; jobs get the previous version`,
        `nspawn-runner chroot-maintenance ${row.name}`));
    }
  }
  const { name, from } = defaultImageOf(ctx.settings, runnerDefault);
  const check = 'default image';
  if (!name) {
    findings.push(warning(check, 'none is set: jobs without image: fail', 'default_image: bookworm in the configuration, or --default-image=bookworm in prepare_args (nspawn-runner toml writes it)'));
    return findings;
  }
  const row = rows.find((candidate) => candidate.name === name);
  if (!row?.tree) {
    const suite = debianSuites.includes(name) ? name : 'bookworm';
    const create = findPlaybook(ctx.settings, name) ? `nspawn-runner chroot-maintenance ${name}` : `nspawn-runner chroot-create --suite ${suite} ${name}`;
    findings.push(error(check, `${name} (${from}) does not exist at ${imagePath(ctx.settings, name)}: every job without image: fails`, create));
    return findings;
  }
  try {
    checkImageAllowed(ctx.settings, name);
  } catch {
    findings.push(error(check, `${name} (${from}) is not in allowed_images (${ctx.settings.allowedImages!.join(', ')}): every job without image: is refused`,
      `add "${name}" to allowed_images`));
    return findings;
  }
  const problem = await probeImage(ctx, row);
  if (problem) {
    findings.push(error(check, `${name} (${from}): ${problem}`, `fix the image (nspawn-runner chroot-login ${name}), or make it again`));
  } else if (chooseHostName(ctx.settings) === 'systemd' && !initPaths.some((path) => existsSync(`${row.tree}/${path}`))) {
    findings.push(error(check, `${name} (${from}) has no systemd, and machines on systemd hosts boot it`, `nspawn-runner chroot-login ${name} -- apt-get install -y systemd dbus`));
  } else {
    findings.push(ok(check, `${name} (${from}): a machine of it starts and has ${imageTools.join(', ')}`));
  }
  return findings;
}

export interface RunnerConfigFacts {
  findings: Finding[];
  /** --default-image of the first [[runners]] section that runs this installation. */
  defaultImage?: string;
}

interface RunnerSection {
  name?: unknown;
  executor?: unknown;
  custom?: Record<string, unknown>;
}

function optionValue(args: string[], option: string): string | undefined {
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === option) return args[index + 1];
    if (arg.startsWith(`${option}=`)) return arg.slice(option.length + 1);
  }
  return undefined;
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

const stages = [['config', 'gitlab-config'], ['prepare', 'prepare'], ['run', 'run'], ['cleanup', 'cleanup']] as const;

export async function checkRunnerConfig(ctx: DoctorContext): Promise<RunnerConfigFacts> {
  const check = 'config.toml';
  const file = ctx.runnerConfig;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (problem) {
    const code = (problem as NodeJS.ErrnoException).code;
    const installed = findProgram('gitlab-runner', ctx.path);
    return { findings: [warning(check, code === 'ENOENT'
      ? `no ${file}: gitlab-runner is ${installed ? 'installed but not registered' : 'not installed'} here (or keeps its configuration elsewhere: doctor --runner-config FILE)`
      : `cannot read ${file} (${code})`, `nspawn-runner toml >> ${file}, then fill in url and token`)] };
  }
  let document: { runners?: RunnerSection[] };
  try {
    const { parse } = await import('smol-toml');
    document = parse(text) as typeof document;
  } catch (problem) {
    return { findings: [error(check, `${file} does not parse: ${(problem as Error).message.split('\n')[0]}: gitlab-runner cannot start`, 'fix the file')] };
  }
  const ours = (document.runners ?? []).filter((section) => section.executor === 'custom' && stages.some(([key]) => {
    const exec = section.custom?.[`${key}_exec`];
    return typeof exec === 'string' && (sameFile(exec, ctx.executable) || exec.endsWith('/nspawn-runner'));
  }));
  if (!ours.length) {
    return { findings: [warning(check, `no [[runners]] section of ${file} runs nspawn-runner`, `nspawn-runner toml >> ${file}, then fill in url and token`)] };
  }
  const findings: Finding[] = [];
  let defaultImage: string | undefined;
  for (const section of ours) {
    const label = `runner ${typeof section.name === 'string' ? section.name : '(unnamed)'}`;
    const custom = section.custom!;
    const problems: string[] = [];
    const notes: string[] = [];
    for (const [key, command] of stages) {
      const exec = custom[`${key}_exec`];
      const args = Array.isArray(custom[`${key}_args`]) ? (custom[`${key}_args`] as unknown[]).map(String) : [];
      if (typeof exec !== 'string') {
        if (key !== 'config') problems.push(`${key}_exec is missing`);
        continue;
      }
      if (!sameFile(exec, ctx.executable)) notes.push(`${key}_exec is ${exec}, not this installation (${ctx.executable})`);
      if (!args.includes(command)) problems.push(`${key}_args do not name the command "${command}"`);
      const root = optionValue(args, '--root');
      if (root && root !== ctx.settings.root) notes.push(`${key}_args use the state directory ${root}, doctor checked ${ctx.settings.root} (nspawn-runner --root ${root} doctor)`);
      if (key === 'prepare') defaultImage ??= optionValue(args, '--default-image');
    }
    const timeout = (key: string): number | undefined => (typeof custom[key] === 'number' ? custom[key] as number : undefined);
    const prepare = timeout('prepare_exec_timeout');
    if (prepare !== undefined && prepare < ctx.settings.readyTimeoutSeconds + 30) {
      notes.push(`prepare_exec_timeout = ${prepare} leaves too little beyond ready_timeout (${ctx.settings.readyTimeoutSeconds} s): a slow start is killed as a system failure (${ctx.settings.readyTimeoutSeconds + 60} fits)`);
    }
    const cleanup = timeout('cleanup_exec_timeout');
    if (cleanup !== undefined && cleanup < 30) notes.push(`cleanup_exec_timeout = ${cleanup}: stopping a machine can take up to 15 s (60 fits)`);
    const graceful = timeout('graceful_kill_timeout');
    if (graceful !== undefined && graceful < 15) {
      notes.push(`graceful_kill_timeout = ${graceful}: a cancelled stage's processes get 10 s after SIGTERM, run needs a little more to report (30 fits)`);
    }
    if (problems.length) findings.push(error(check, `${label}: ${problems.join('; ')}: its jobs fail`, 'nspawn-runner toml prints a working section'));
    else if (notes.length) findings.push(warning(check, `${label}: ${notes.join('; ')}`, 'nspawn-runner toml prints the values that fit'));
    else findings.push(ok(check, `${label} runs this installation with sane timeouts`));
  }
  return { findings, defaultImage };
}

