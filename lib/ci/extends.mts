// `extends:` and `default:` as GitLab applies them to each job: the
// extended jobs are resolved first (multi-level, in the order listed, each
// deep-merged over the previous, the job itself last), then every `default:`
// key the job still lacks is filled in, unless `inherit: default:` says no.
import { deepMerge } from './include.mts';
import { CiConfigError, isCiMap, keyPosition, newMap, positionOf, type CiMap, type CiValue, type Position } from './yaml-source.mts';

/** GitLab's limit of extends levels. */
const maxDepth = 11;

/** Keys `default:` may set. */
export const defaultKeys = [
  'after_script', 'artifacts', 'before_script', 'cache', 'hooks', 'id_tokens', 'image', 'interruptible', 'retry',
  'services', 'tags', 'timeout',
] as const;

/** Job maps by name (hidden ones included), each with its extends resolved; others are left out. */
export function resolveAllExtends(jobs: ReadonlyMap<string, CiMap>): Map<string, CiMap> {
  const resolved = new Map<string, CiMap>();
  const resolve = (name: string, chain: readonly string[]): CiMap => {
    const done = resolved.get(name);
    if (done) return done;
    const job = jobs.get(name)!;
    const extended = job.extends;
    if (extended === undefined) {
      resolved.set(name, job);
      return job;
    }
    const at = keyPosition(job, 'extends');
    const names = extendsList(extended, name, at);
    if (chain.length >= maxDepth) throw new CiConfigError(`job ${name}: extends nested deeper than ${maxDepth} levels: ${[...chain, name].join(' -> ')}`, at);
    let merged = newMap();
    for (const base of names) {
      if (base === name || chain.includes(base)) {
        const cycle = [...chain.slice(base === name ? chain.length : chain.indexOf(base)), name, base];
        throw new CiConfigError(`circular extends: ${cycle.join(' -> ')}`, at);
      }
      if (!jobs.has(base)) {
        throw new CiConfigError(`job ${name}: extends unknown job ${base}`, at, `jobs and hidden jobs: ${[...jobs.keys()].join(', ')}`);
      }
      merged = deepMerge(merged, resolve(base, [...chain, name]));
    }
    const own = deepMerge(newMap(), job);
    delete own.extends;
    const result = deepMerge(merged, own);
    resolved.set(name, result);
    return result;
  };
  for (const name of jobs.keys()) resolve(name, []);
  return resolved;
}

function extendsList(value: CiValue, job: string, at: Position | undefined): string[] {
  const list = Array.isArray(value) ? value.flat(10) : [value];
  if (list.length === 0 || !list.every((item) => typeof item === 'string' && item !== '')) {
    throw new CiConfigError(`job ${job}: extends must be a job name or a list of them`, at);
  }
  return list as string[];
}

/** What `inherit:` allows a job to take: every default key and global variable, some, or none. */
export interface Inherit {
  defaults: boolean | readonly string[];
  variables: boolean | readonly string[];
}

export function parseInherit(job: CiMap, name: string): Inherit {
  const value = job.inherit;
  if (value === undefined || value === null) return { defaults: true, variables: true };
  const at = keyPosition(job, 'inherit');
  if (!isCiMap(value)) throw new CiConfigError(`job ${name}: inherit must be a mapping with default: and variables:`, at);
  const read = (key: string): boolean | string[] => {
    const item = value[key];
    if (item === undefined || item === null) return true;
    if (typeof item === 'boolean') return item;
    if (Array.isArray(item) && item.every((entry) => typeof entry === 'string')) return item as string[];
    throw new CiConfigError(`job ${name}: inherit:${key} must be true, false or a list of names`, keyPosition(value, key) ?? at);
  };
  for (const key of Object.keys(value)) {
    if (key !== 'default' && key !== 'variables') throw new CiConfigError(`job ${name}: inherit has an unknown key ${key}`, keyPosition(value, key));
  }
  return { defaults: read('default'), variables: read('variables') };
}

export function inherits(setting: boolean | readonly string[], key: string): boolean {
  return typeof setting === 'boolean' ? setting : setting.includes(key);
}

/** The job with the default keys it lacks and inherits. */
export function applyDefaults(job: CiMap, defaults: CiMap, inherit: Inherit): CiMap {
  const missing = Object.keys(defaults).filter((key) => !(key in job) && inherits(inherit.defaults, key));
  if (missing.length === 0) return job;
  const extra = newMap();
  for (const key of missing) extra[key] = defaults[key]!;
  return deepMerge(extra, job);
}

/** `default:` plus the old top-level forms of its keys (image:, before_script:, ... at the top). */
export function collectDefaults(config: CiMap): CiMap {
  const defaults = newMap();
  for (const key of ['image', 'services', 'cache', 'before_script', 'after_script'] as const) {
    if (config[key] !== undefined) defaults[key] = config[key];
  }
  const declared = config.default;
  if (declared !== undefined && declared !== null) {
    if (!isCiMap(declared)) throw new CiConfigError('default must be a mapping', positionOf(declared) ?? keyPosition(config, 'default'));
    for (const [key, value] of Object.entries(declared)) {
      if (!(defaultKeys as readonly string[]).includes(key)) {
        throw new CiConfigError(`default has an unknown key ${key}`, keyPosition(declared, key), `default: takes ${defaultKeys.join(', ')}`);
      }
      defaults[key] = value;
    }
  }
  return defaults;
}
