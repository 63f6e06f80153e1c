// One job of the YAML, narrowed to a JobDefinition. Keys GitLab does not
// know are errors, as in GitLab (a typo must not silently drop a setting);
// keys GitLab knows but a local run cannot honour are named in the warnings.
import { applyDefaults, parseInherit, inherits } from './extends.mts';
import type { ArtifactsSpec, ArtifactsWhen, CacheSpec, ImageSpec, JobDefinition, ParallelSpec } from './model.mts';
import { booleanValue, parseAllowFailure, parseNeeds, parseWhen, stringList, text } from './fields.mts';
import { parseOnlyExcept, parseRules } from './rules.mts';
import { parseServices } from './services.mts';
import { parseVariables, type Variable, type Variables } from './variables.mts';
import { CiConfigError, isCiMap, keyPosition, positionOf, type CiMap, type CiValue, type Position } from './yaml-source.mts';

/** Keys a local run honours. */
const supportedKeys = new Set([
  'script', 'before_script', 'after_script', 'image', 'services', 'stage', 'variables', 'extends', 'inherit', 'when', 'allow_failure',
  'rules', 'only', 'except', 'needs', 'dependencies', 'artifacts', 'cache', 'parallel', 'timeout', 'start_in', 'environment',
  // Only choose a runner or describe the job for GitLab's UI: nothing to do locally.
  'tags', 'interruptible', 'coverage', 'description', 'manual_confirmation',
]);
/** Keys GitLab knows whose effect a local run does not have: named in the warning. */
const unsupportedKeys = new Set([
  'trigger', 'retry', 'resource_group', 'secrets', 'id_tokens', 'hooks', 'release', 'pages', 'publish',
  'identity', 'dast_configuration', 'run',
]);

export interface JobContext {
  defaults: CiMap;
  globalVariables: Variables;
  stages: readonly string[];
  /** "key (job a, job b)" entries for the one warning line. */
  warn: (what: string, job: string) => void;
}

export function parseJob(name: string, raw: CiMap, context: JobContext, jobAt?: Position): JobDefinition {
  const inherit = parseInherit(raw, name);
  const job = applyDefaults(raw, context.defaults, inherit);
  const at = jobAt ?? positionOf(raw);
  for (const key of Object.keys(job)) {
    if (unsupportedKeys.has(key)) context.warn(key, name);
    else if (!supportedKeys.has(key)) throw new CiConfigError(`job ${name}: unknown key ${key}`, keyPosition(job, key));
  }
  const trigger = 'trigger' in job;
  const script = scriptLines(job, 'script', name);
  if (script.length === 0 && !trigger && !('run' in job)) {
    throw new CiConfigError(`job ${name} has no script:`, at, 'every job needs script: (or trigger:)');
  }
  if ('rules' in job && ('only' in job || 'except' in job)) {
    throw new CiConfigError(`job ${name}: rules: cannot be used with only: or except:`, keyPosition(job, 'rules'));
  }
  const stage = job.stage === undefined ? 'test' : text(job.stage, `job ${name}: stage`, keyPosition(job, 'stage'));
  if (!context.stages.includes(stage)) {
    throw new CiConfigError(`job ${name}: stage ${stage} is not in stages:`, keyPosition(job, 'stage') ?? at, `stages: ${context.stages.join(', ')}`);
  }
  const when = parseWhen(job.when, `job ${name}: when`, keyPosition(job, 'when')) ?? 'on_success';
  if (when === 'never') throw new CiConfigError(`job ${name}: when: never is only allowed in rules:`, keyPosition(job, 'when'));
  const rules = job.rules === undefined ? undefined : parseRules(job.rules, `job ${name}`, keyPosition(job, 'rules'));
  // A manual job may fail by default, unless its manual comes from rules.
  const allowFailure = parseAllowFailure(job.allow_failure, `job ${name}: allow_failure`, keyPosition(job, 'allow_failure'))
    ?? { allowed: when === 'manual' && rules === undefined };
  const inheritedVariables = new Map<string, Variable>();
  for (const [key, variable] of context.globalVariables) {
    if (inherits(inherit.variables, key)) inheritedVariables.set(key, variable);
  }
  const definition: JobDefinition = {
    name,
    at,
    stage,
    beforeScript: scriptLines(job, 'before_script', name),
    script,
    afterScript: scriptLines(job, 'after_script', name),
    services: parseServices(job.services, name, keyPosition(job, 'services')),
    variables: parseVariables(job.variables, keyPosition(job, 'variables'), `job ${name}: variables`),
    inheritedVariables,
    when,
    allowFailure,
    cache: parseCaches(job.cache, name, keyPosition(job, 'cache')),
    trigger,
  };
  if (job.image !== undefined && job.image !== null) definition.image = parseImage(job.image, name, keyPosition(job, 'image'));
  if (rules) definition.rules = rules;
  if (job.only !== undefined) definition.only = parseOnlyExcept(job.only, `job ${name}: only`, keyPosition(job, 'only'));
  if (job.except !== undefined) definition.except = parseOnlyExcept(job.except, `job ${name}: except`, keyPosition(job, 'except'));
  if (job.needs !== undefined) definition.needs = parseNeeds(job.needs, `job ${name}: needs`, keyPosition(job, 'needs'));
  if (job.dependencies !== undefined) definition.dependencies = stringList(job.dependencies, `job ${name}: dependencies`, keyPosition(job, 'dependencies'));
  if (job.artifacts !== undefined && job.artifacts !== null) definition.artifacts = parseArtifacts(job.artifacts, name, keyPosition(job, 'artifacts'), context);
  if (job.parallel !== undefined) definition.parallel = parseParallel(job.parallel, name, keyPosition(job, 'parallel'));
  if (job.timeout !== undefined) definition.timeoutSeconds = parseDuration(job.timeout, `job ${name}: timeout`, keyPosition(job, 'timeout'));
  if (job.environment !== undefined) {
    const environment = isCiMap(job.environment) ? job.environment.name : job.environment;
    if (typeof environment === 'string') definition.environment = environment;
  }
  return definition;
}

/** script:, before_script:, after_script: a string or a list, nested lists (from !reference) flattened. */
function scriptLines(job: CiMap, key: string, name: string): string[] {
  const value = job[key];
  if (value === undefined || value === null) return [];
  const lines = Array.isArray(value) ? value.flat(10) : [value];
  return lines.map((line) => {
    if (typeof line === 'string') return line;
    if (typeof line === 'number' || typeof line === 'boolean') return String(line);
    throw new CiConfigError(`job ${name}: ${key} must be a string or a list of strings`, positionOf(line) ?? keyPosition(job, key));
  });
}

function parseImage(value: CiValue, job: string, at: Position | undefined): ImageSpec {
  if (typeof value === 'string' && value !== '') return { name: value };
  if (isCiMap(value) && typeof value.name === 'string' && value.name !== '') {
    const image: ImageSpec = { name: value.name };
    if (value.entrypoint !== undefined) image.entrypoint = stringList(value.entrypoint, `job ${job}: image:entrypoint`, at);
    if (value.pull_policy !== undefined) image.pullPolicy = stringList(value.pull_policy, `job ${job}: image:pull_policy`, at);
    return image;
  }
  throw new CiConfigError(`job ${job}: image must be a name or a mapping with name:`, positionOf(value) ?? at);
}

const artifactsWhen: readonly ArtifactsWhen[] = ['on_success', 'on_failure', 'always'];

function parseArtifactsWhen(value: CiValue | undefined, where: string, at: Position | undefined): ArtifactsWhen {
  if (value === undefined || value === null) return 'on_success';
  if (typeof value === 'string' && (artifactsWhen as readonly string[]).includes(value)) return value as ArtifactsWhen;
  throw new CiConfigError(`${where} must be one of ${artifactsWhen.join(', ')}`, positionOf(value) ?? at);
}

function parseArtifacts(value: CiValue, job: string, at: Position | undefined, context: JobContext): ArtifactsSpec {
  if (!isCiMap(value)) throw new CiConfigError(`job ${job}: artifacts must be a mapping`, positionOf(value) ?? at);
  const where = `job ${job}: artifacts`;
  let dotenv: string[] = [];
  for (const key of Object.keys(value)) {
    const keyAt = keyPosition(value, key);
    if (key === 'reports') {
      const reports = value.reports;
      if (!isCiMap(reports)) throw new CiConfigError(`${where}:reports must be a mapping`, keyAt);
      for (const report of Object.keys(reports)) {
        if (report === 'dotenv') dotenv = stringList(reports.dotenv!, `${where}:reports:dotenv`, keyPosition(reports, report));
        else context.warn(`artifacts:reports:${report}`, job);
      }
    } else if (!['paths', 'exclude', 'untracked', 'when', 'name', 'expire_in', 'expose_as', 'public', 'access'].includes(key)) {
      throw new CiConfigError(`${where}: unknown key ${key}`, keyAt);
    }
  }
  return {
    paths: value.paths === undefined ? [] : stringList(value.paths, `${where}:paths`, keyPosition(value, 'paths')),
    exclude: value.exclude === undefined ? [] : stringList(value.exclude, `${where}:exclude`, keyPosition(value, 'exclude')),
    untracked: booleanValue(value.untracked, `${where}:untracked`, keyPosition(value, 'untracked')) ?? false,
    when: parseArtifactsWhen(value.when, `${where}:when`, keyPosition(value, 'when')),
    dotenv,
  };
}

function parseCaches(value: CiValue | undefined, job: string, at: Position | undefined): CacheSpec[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value.flat(10) : [value];
  return list.map((item) => parseCache(item, job, positionOf(item) ?? at));
}

function parseCache(value: CiValue, job: string, at: Position | undefined): CacheSpec {
  const where = `job ${job}: cache`;
  if (!isCiMap(value)) throw new CiConfigError(`${where} must be a mapping`, at);
  let key: CacheSpec['key'] = 'default';
  for (const name of Object.keys(value)) {
    if (name === 'unprotect') continue;
    if (!['key', 'paths', 'untracked', 'policy', 'when', 'fallback_keys'].includes(name)) {
      throw new CiConfigError(`${where}: unknown key ${name}`, keyPosition(value, name));
    }
  }
  if (isCiMap(value.key)) {
    const files = stringList(value.key.files ?? null, `${where}:key:files`, keyPosition(value, 'key'));
    key = { files };
    if (value.key.prefix !== undefined) key.prefix = text(value.key.prefix, `${where}:key:prefix`, keyPosition(value, 'key'));
  } else if (value.key !== undefined && value.key !== null) {
    key = text(value.key, `${where}:key`, keyPosition(value, 'key'));
  }
  const policy = value.policy ?? 'pull-push';
  if (policy !== 'pull' && policy !== 'push' && policy !== 'pull-push') {
    throw new CiConfigError(`${where}:policy must be pull, push or pull-push`, keyPosition(value, 'policy'));
  }
  return {
    key,
    paths: value.paths === undefined ? [] : stringList(value.paths, `${where}:paths`, keyPosition(value, 'paths')),
    untracked: booleanValue(value.untracked, `${where}:untracked`, keyPosition(value, 'untracked')) ?? false,
    policy,
    when: parseArtifactsWhen(value.when, `${where}:when`, keyPosition(value, 'when')),
    fallbackKeys: value.fallback_keys === undefined ? [] : stringList(value.fallback_keys, `${where}:fallback_keys`, keyPosition(value, 'fallback_keys')),
  };
}

/** GitLab's limit of parallel jobs per job. */
const maxParallel = 200;

function parseParallel(value: CiValue, job: string, at: Position | undefined): ParallelSpec {
  const where = `job ${job}: parallel`;
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1 || value > maxParallel) throw new CiConfigError(`${where} must be a number from 1 to ${maxParallel}`, at);
    return { total: value };
  }
  if (isCiMap(value) && Array.isArray(value.matrix) && Object.keys(value).length === 1) {
    const matrix = value.matrix.map((entry) => {
      if (!isCiMap(entry) || Object.keys(entry).length === 0) throw new CiConfigError(`${where}:matrix entries are mappings of variables to values`, positionOf(entry) ?? at);
      return Object.entries(entry).map(([name, values]): [string, string[]] => {
        const list = Array.isArray(values) ? values : [values];
        if (!list.every((item) => typeof item === 'string' || typeof item === 'number')) {
          throw new CiConfigError(`${where}:matrix: ${name} must be a value or a list of values`, keyPosition(entry, name));
        }
        return [name, list.map(String)];
      });
    });
    const total = matrix.reduce((sum, entry) => sum + entry.reduce((product, [, values]) => product * values.length, 1), 0);
    if (total > maxParallel) throw new CiConfigError(`${where}:matrix makes ${total} jobs, more than ${maxParallel}`, at);
    return { matrix };
  }
  throw new CiConfigError(`${where} must be a number or matrix: [...]`, at);
}

const units: Record<string, number> = {
  s: 1, sec: 1, secs: 1, second: 1, seconds: 1,
  m: 60, min: 60, mins: 60, minute: 60, minutes: 60,
  h: 3600, hr: 3600, hrs: 3600, hour: 3600, hours: 3600,
  d: 86400, day: 86400, days: 86400,
  w: 604800, week: 604800, weeks: 604800,
};

/** Durations as GitLab's ChronicDuration reads them: "1h 30m", "90 minutes", "3600". */
export function parseDuration(value: CiValue, where: string, at: Position | undefined): number {
  if (typeof value === 'number' && value > 0) return value;
  if (typeof value === 'string') {
    const parts = [...value.toLowerCase().matchAll(/(\d+(?:\.\d+)?)\s*([a-z]*)/g)];
    const rest = value.toLowerCase().replace(/(\d+(?:\.\d+)?)\s*([a-z]*)/g, '').replace(/\band\b|[\s,]/g, '');
    if (parts.length > 0 && rest === '' && parts.every(([, , unit]) => unit === '' || unit! in units)) {
      const seconds = parts.reduce((sum, [, number, unit]) => sum + Number(number) * (unit ? units[unit]! : 1), 0);
      if (seconds > 0) return Math.round(seconds);
    }
  }
  throw new CiConfigError(`${where} must be a duration such as "1h 30m"`, positionOf(value) ?? at);
}
