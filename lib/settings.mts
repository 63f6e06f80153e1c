// Runner configuration: defaults, then the config file, then the environment,
// then the command line. Read once per process and never mutated.
import { existsSync, readFileSync } from 'node:fs';
import { SystemError } from './errors.mts';

export type BackendChoice = 'auto' | 'btrfs' | 'overlay' | 'tmpfs';
export type HostChoice = 'auto' | 'systemd' | 'direct';
/**
 * host: the host's network (the original's behaviour); private: loopback
 * only, fully offline; veth: a veth pair per machine (outbound access when
 * the host routes it: systemd-networkd does by default, else NAT); zone:NAME:
 * a bridge shared by the machines of that zone.
 */
export type NetworkChoice = 'host' | 'private' | 'veth' | `zone:${string}`;

/** Resource limits for a machine's transient unit on systemd hosts (systemd.resource-control(5)). */
export interface Limits {
  cpuWeight?: number;
  memoryHigh?: string;
  memoryMax?: string;
  tasksMax?: number;
}

/** gitlab-runner's pull policies (docs: "Configure how runners pull images"). */
export type PullPolicy = 'always' | 'if-not-present' | 'never';
export const pullPolicies = ['always', 'if-not-present', 'never'] as const satisfies readonly PullPolicy[];

/** Images from registries (lib/oci/); README, "OCI images". */
export interface OciSettings {
  enabled: boolean;
  /** Globs of the registries (host[:port], docker.io for Docker Hub) jobs may pull from; undefined allows all. */
  allowedRegistries: string[] | undefined;
  /** The policies tried in order when a job asks for none. */
  pullPolicy: PullPolicy[];
  /** The policies a job may ask for; undefined: only those of pullPolicy. */
  allowedPullPolicies: PullPolicy[] | undefined;
  /** Globs of registries reached over plain http (or https without certificate checks). */
  insecureRegistries: string[];
  /** Docker's config.json format: the host's credentials, after the job's DOCKER_AUTH_CONFIG. */
  credentialsFile: string;
  /** gc removes pulled images no job has used for this long. */
  gcUnusedAfterSeconds: number;
  /** Bound of one pull, and of the wait for another job's pull of the same image. */
  pullTimeoutSeconds: number;
}

export interface Settings {
  /** State directory: images are its plain subdirectories, bookkeeping lives in dot-directories. */
  root: string;
  /** Where playbooks and the config file live. */
  configDir: string;
  backend: BackendChoice;
  host: HostChoice;
  defaultImage: string | undefined;
  /** Size bound of a job's RAM-backed writable layer (tmpfs backend), as mount(8) takes it. */
  tmpfsSize: string;
  limits: Limits;
  /** How long prepare waits for a machine to become ready. */
  readyTimeoutSeconds: number;
  network: NetworkChoice;
  /** Container root is not host root: a user namespace per machine (--private-users=pick). */
  privateUsers: boolean;
  /** Glob patterns (* and ?) of the images jobs may ask for; undefined allows all. */
  allowedImages: string[] | undefined;
  /** gitlab-runner binary shared read-only into machines: auto, none, or a path (see job/shares.mts). */
  runnerBinary: string;
  /** Share the builds directory into machines, so checkouts persist on the host between jobs. */
  keepBuilds: boolean;
  /** Jobs get every capability, no seccomp filter and every device, like Docker's privileged (see README). */
  privileged: boolean;
  /** How long the machine of a job whose build failed is kept for debugging (job/keep-failed.mts); 0 keeps none. */
  keepFailedSeconds: number;
  /** Globs of the images a job's services: may name (gitlab-runner's allowed_services); undefined allows all. */
  allowedServices: string[] | undefined;
  /** How long prepare waits for a service's ports before it warns and goes on. */
  servicesTimeoutSeconds: number;
  oci: OciSettings;
}

export interface SettingsOverrides {
  root?: string;
  backend?: string;
  host?: string;
  defaultImage?: string;
  config?: string;
}

const defaults: Settings = {
  root: '/var/lib/nspawn-runner',
  configDir: '/etc/nspawn-runner',
  backend: 'auto',
  host: 'auto',
  defaultImage: undefined,
  tmpfsSize: '4G',
  limits: { cpuWeight: 50, memoryHigh: '30%', memoryMax: '40%', tasksMax: 16384 },
  readyTimeoutSeconds: 60,
  network: 'host',
  privateUsers: false,
  allowedImages: undefined,
  runnerBinary: 'auto',
  keepBuilds: false,
  privileged: false,
  keepFailedSeconds: 0,
  allowedServices: undefined,
  // gitlab-runner's wait_for_services_timeout.
  servicesTimeoutSeconds: 30,
  oci: {
    enabled: false,
    allowedRegistries: undefined,
    // gitlab-runner's default: a job always gets what the tag names now.
    pullPolicy: ['always'],
    allowedPullPolicies: undefined,
    insecureRegistries: [],
    // Where `docker login` as root writes, and what gitlab-runner's Docker executor reads.
    credentialsFile: '/root/.docker/config.json',
    gcUnusedAfterSeconds: 7 * 86400,
    pullTimeoutSeconds: 3600,
  },
};

export const configFileName = 'nspawn-runner.conf';

export const backendChoices = ['auto', 'btrfs', 'overlay', 'tmpfs'] as const satisfies readonly BackendChoice[];
export const hostChoices = ['auto', 'systemd', 'direct'] as const satisfies readonly HostChoice[];

/** The configuration file in use: --config, $NSPAWN_RUNNER_CONFIG, or the one in the config directory. */
export function configFilePath(overrides: SettingsOverrides = {}, env: NodeJS.ProcessEnv = process.env): string {
  return overrides.config || env.NSPAWN_RUNNER_CONFIG || `${env.NSPAWN_RUNNER_CONFIG_DIR || defaults.configDir}/${configFileName}`;
}

/**
 * Receives what is wrong with the configuration instead of a throw: the bad
 * key keeps its default and loading goes on (doctor reports every problem).
 */
export type ConfigProblemHandler = (problem: SystemError) => void;

export async function loadSettings(
  overrides: SettingsOverrides = {},
  env: NodeJS.ProcessEnv = process.env,
  onProblem?: ConfigProblemHandler,
): Promise<Readonly<Settings>> {
  const configDir = env.NSPAWN_RUNNER_CONFIG_DIR || defaults.configDir;
  const configFile = configFilePath(overrides, env);
  const fromFile = await readConfigFile(configFile, Boolean(overrides.config || env.NSPAWN_RUNNER_CONFIG), onProblem);
  const settings: Settings = {
    ...defaults,
    ...fromFile,
    configDir,
    limits: { ...defaults.limits, ...fromFile.limits },
    oci: { ...defaults.oci, ...fromFile.oci },
  };
  settings.root = overrides.root || env.NSPAWN_RUNNER_ROOT || settings.root;
  const origin = (flag: string | undefined, variable: string) =>
    (flag ? 'command line' : env[variable] ? variable : configFile);
  const attempt = (step: () => void): void => {
    try {
      step();
    } catch (error) {
      if (!onProblem || !(error instanceof SystemError)) throw error;
      onProblem(error);
    }
  };
  attempt(() => {
    settings.backend = parseChoice(overrides.backend || env.NSPAWN_RUNNER_BACKEND || settings.backend, backendChoices, 'backend',
      origin(overrides.backend, 'NSPAWN_RUNNER_BACKEND'));
  });
  attempt(() => {
    settings.host = parseChoice(overrides.host || env.NSPAWN_RUNNER_HOST || settings.host, hostChoices, 'host',
      origin(overrides.host, 'NSPAWN_RUNNER_HOST'));
  });
  settings.defaultImage = overrides.defaultImage || settings.defaultImage;
  if (!settings.root.startsWith('/')) throw new SystemError(`state directory must be an absolute path: ${settings.root}`);
  return Object.freeze(settings);
}

/** What a config file sets: any setting, and any part of the oci section. */
export type FileSettings = Partial<Omit<Settings, 'oci'>> & { oci?: Partial<OciSettings> };

/** Bun's own YAML parser, when Bun runs us (the product does; the tests run on Node). */
const bunYaml = (globalThis as { Bun?: { YAML?: { parse(text: string): unknown } } }).Bun?.YAML;

/**
 * The config file's document. Every stage reads it, and under Bun the yaml
 * package costs 40 to 60 ms to load and parse a first document, more than a
 * whole run stage: Bun's built-in parser reads it there. The yaml package
 * still reads a file Bun refuses, for a message with line and column, and
 * doctor checks the file with it (Bun keeps the last of a key given twice
 * where yaml refuses the file).
 */
async function readConfigYaml(path: string): Promise<unknown> {
  if (bunYaml) {
    try {
      return bunYaml.parse(readFileSync(path, 'utf8'));
    } catch {
      // yaml says where
    }
  }
  const { readYamlFile } = await import('./yaml-file.mts');
  return readYamlFile(path);
}

/** The config file is optional; it is parsed only when there is one. */
async function readConfigFile(path: string, required: boolean, onProblem?: ConfigProblemHandler): Promise<FileSettings> {
  if (!existsSync(path)) {
    if (required) throw new SystemError(`config file ${path} not found`);
    return {};
  }
  let data: unknown;
  try {
    data = await readConfigYaml(path);
  } catch (error) {
    if (!onProblem || !(error instanceof SystemError)) throw error;
    onProblem(error);
    return {};
  }
  return parseConfigDocument(data, path, onProblem);
}

/**
 * Narrows a parsed config document; every error names the file and the key.
 * With onProblem, a bad key is reported there and left out instead.
 */
export function parseConfigDocument(data: unknown, file: string, onProblem?: ConfigProblemHandler): FileSettings {
  if (data === null || data === undefined) return {};
  const doc = asRecord(data, file, '(top level)');
  const result: FileSettings = {};
  for (const [key, value] of Object.entries(doc)) {
    try {
      parseConfigKey(result, key, value, file);
    } catch (error) {
      if (!onProblem || !(error instanceof SystemError)) throw error;
      onProblem(error);
    }
  }
  return result;
}

function parseConfigKey(result: FileSettings, key: string, value: unknown, file: string): void {
  switch (key) {
    case 'root': result.root = asString(value, file, key); break;
    case 'backend': result.backend = parseChoice(asString(value, file, key), backendChoices, key, file); break;
    case 'host': result.host = parseChoice(asString(value, file, key), hostChoices, key, file); break;
    case 'default_image': result.defaultImage = asString(value, file, key); break;
    case 'tmpfs_size': result.tmpfsSize = asSize(value, file, key); break;
    case 'ready_timeout': result.readyTimeoutSeconds = asNumber(value, file, key); break;
    case 'limits': result.limits = parseLimits(value, file); break;
    case 'network': result.network = parseNetwork(asString(value, file, key), file); break;
    case 'private_users': result.privateUsers = asBoolean(value, file, key); break;
    case 'allowed_images': result.allowedImages = asStringList(value, file, key); break;
    case 'gitlab_runner': result.runnerBinary = asRunnerBinary(value, file, key); break;
    case 'keep_builds': result.keepBuilds = asBoolean(value, file, key); break;
    case 'privileged': result.privileged = asBoolean(value, file, key); break;
    case 'keep_failed': result.keepFailedSeconds = parseDuration(value, file, key); break;
    case 'allowed_services': result.allowedServices = asStringList(value, file, key); break;
    case 'services_timeout': result.servicesTimeoutSeconds = asDuration(value, file, key); break;
    case 'oci': result.oci = parseOci(value, file); break;
    default: throw new SystemError(`${file}: unknown key "${key}"`, 'see README.md, "Configuration"');
  }
}

const durationUnits: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** A duration such as 30m, 2h, 90s or 1d (a bare number is seconds); false or 0 is off. */
export function parseDuration(value: unknown, file: string, key: string): number {
  if (value === false || value === 0) return 0;
  if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
  const match = typeof value === 'string' ? /^(\d+)([smhd])?$/.exec(value) : null;
  if (match) return Number(match[1]) * durationUnits[match[2] ?? 's']!;
  throw new SystemError(`${file}: ${key} must be a duration such as 30m, 2h or 1d, or false`);
}

function parseLimits(value: unknown, file: string): Limits {
  const limits: Limits = {};
  for (const [key, item] of Object.entries(asRecord(value, file, 'limits'))) {
    const where = `limits.${key}`;
    // null switches a default limit off, as the original's None did.
    const unset = item === null;
    switch (key) {
      case 'cpu_weight': limits.cpuWeight = unset ? undefined : asNumber(item, file, where); break;
      case 'memory_high': limits.memoryHigh = unset ? undefined : asSize(item, file, where); break;
      case 'memory_max': limits.memoryMax = unset ? undefined : asSize(item, file, where); break;
      case 'tasks_max': limits.tasksMax = unset ? undefined : asNumber(item, file, where); break;
      default: throw new SystemError(`${file}: unknown key "${where}"`);
    }
  }
  return limits;
}

function parseOci(value: unknown, file: string): Partial<OciSettings> {
  const oci: Partial<OciSettings> = {};
  for (const [key, item] of Object.entries(asRecord(value, file, 'oci'))) {
    const where = `oci.${key}`;
    switch (key) {
      case 'enabled': oci.enabled = asBoolean(item, file, where); break;
      case 'allowed_registries': oci.allowedRegistries = asStringList(item, file, where); break;
      case 'pull_policy': oci.pullPolicy = asPullPolicies(item, file, where); break;
      case 'allowed_pull_policies': oci.allowedPullPolicies = asPullPolicies(item, file, where); break;
      case 'insecure_registries': oci.insecureRegistries = asStringList(item, file, where); break;
      case 'credentials_file': oci.credentialsFile = asAbsolutePath(item, file, where); break;
      case 'gc_unused_after': oci.gcUnusedAfterSeconds = asDuration(item, file, where); break;
      case 'pull_timeout': oci.pullTimeoutSeconds = asDuration(item, file, where); break;
      default: throw new SystemError(`${file}: unknown key "${where}"`, 'see README.md, "OCI images"');
    }
  }
  return oci;
}

/** One policy or a list, as gitlab-runner's pull_policy takes them. */
function asPullPolicies(value: unknown, file: string, key: string): PullPolicy[] {
  const list = typeof value === 'string' ? [value] : value;
  if (Array.isArray(list) && list.length > 0 && list.every((item) => (pullPolicies as readonly unknown[]).includes(item))) {
    return [...new Set(list as PullPolicy[])];
  }
  throw new SystemError(`${file}: ${key} must be one of ${pullPolicies.join(', ')}, or a non-empty list of them`);
}

function asAbsolutePath(value: unknown, file: string, key: string): string {
  const text = asString(value, file, key);
  if (text.startsWith('/')) return text;
  throw new SystemError(`${file}: ${key} must be an absolute path`);
}

/** Seconds, or a number with s, m, h or d: 90, 30m, 12h, 7d; 0 (or false) is allowed. */
export function asDuration(value: unknown, file: string, key: string): number {
  return parseDuration(typeof value === 'string' && /^0+$/.test(value) ? 0 : value, file, key);
}

export function parseChoice<T extends string>(value: string, choices: readonly T[], key: string, source: string): T {
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw new SystemError(`${source}: ${key} must be one of ${choices.join(', ')}, not "${value}"`);
}

const zoneName = /^zone:[A-Za-z0-9_-]{1,12}$/;

function parseNetwork(value: string, file: string): NetworkChoice {
  if (value === 'host' || value === 'private' || value === 'veth' || zoneName.test(value)) return value as NetworkChoice;
  throw new SystemError(`${file}: network must be host, private, veth or zone:NAME (up to 12 letters), not "${value}"`);
}

function asBoolean(value: unknown, file: string, key: string): boolean {
  if (typeof value === 'boolean') return value;
  throw new SystemError(`${file}: ${key} must be true or false`);
}

function asStringList(value: unknown, file: string, key: string): string[] {
  if (Array.isArray(value) && value.every((item) => typeof item === 'string' && item !== '')) return value as string[];
  throw new SystemError(`${file}: ${key} must be a list of strings`);
}

function asRecord(value: unknown, file: string, key: string): Record<string, unknown> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  throw new SystemError(`${file}: ${key} must be a mapping`);
}

function asString(value: unknown, file: string, key: string): string {
  if (typeof value === 'string' && value !== '') return value;
  throw new SystemError(`${file}: ${key} must be a non-empty string`);
}

function asNumber(value: unknown, file: string, key: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value;
  throw new SystemError(`${file}: ${key} must be a positive number`);
}

function asRunnerBinary(value: unknown, file: string, key: string): string {
  const text = asString(value, file, key);
  if (text === 'auto' || text === 'none' || text.startsWith('/')) return text;
  throw new SystemError(`${file}: ${key} must be auto, none or an absolute path, not "${text}"`);
}

/** Sizes as systemd and mount(8) take them: 512M, 4G, 30%. */
function asSize(value: unknown, file: string, key: string): string {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text === 'string' && /^\d+(\.\d+)?[KMGT%]?$/.test(text)) return text;
  throw new SystemError(`${file}: ${key} must be a size such as 512M, 4G or 30%`);
}

export function buildsDir(settings: Settings): string {
  return `${settings.root}/.build`;
}

export function cacheDir(settings: Settings): string {
  return `${settings.root}/.cache`;
}

export function jobsDir(settings: Settings): string {
  return `${settings.root}/.jobs`;
}
