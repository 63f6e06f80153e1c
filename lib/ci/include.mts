// `include:` as GitLab resolves it: each included file is loaded (with its
// own includes, depth first), the files are deep-merged in order, and the
// including file is merged last, so it wins. Only local files can be read
// here; every other kind (remote, project, template, component) is named in
// the warnings and skipped.
import { existsSync, statSync } from 'node:fs';
import { hasGlob, matchPaths, normalizePattern } from './glob.mts';
import {
  CiConfigError, CiReference, isCiMap, keyPosition, newMap, positionOf, readCiYaml, setKeyPosition, setPosition,
  type CiMap, type CiValue, type Position,
} from './yaml-source.mts';

/** GitLab's limit on included files per pipeline. */
const maxIncludes = 150;

export interface IncludeContext {
  projectDir: string;
  /** Unsupported things met, for the one warning line. */
  warnings: Set<string>;
  /** Decides `include: rules:`; undefined when no variables are known yet. */
  rulesMatch?: (rules: CiValue, at: Position | undefined) => boolean;
}

/** Hashes merge key by key, the right side wins; anything else is replaced (Ruby's deep_merge). */
export function deepMerge(base: CiMap, over: CiMap): CiMap {
  const result = setPosition(newMap(), positionOf(over) ?? positionOf(base));
  for (const [key, value] of Object.entries(base)) {
    result[key] = value;
    setKeyPosition(result, key, keyPosition(base, key));
  }
  for (const [key, value] of Object.entries(over)) {
    const old = result[key];
    result[key] = isCiMap(old) && isCiMap(value) ? deepMerge(old, value) : value;
    setKeyPosition(result, key, keyPosition(over, key));
  }
  return result;
}

/** The configuration of file (project-relative) with every include merged in. */
export function loadWithIncludes(context: IncludeContext, file: string): CiMap {
  const seen = new Set<string>();
  return loadFile(context, normalizePattern(file), undefined, seen);
}

function loadFile(context: IncludeContext, file: string, from: Position | undefined, seen: Set<string>): CiMap {
  const path = `${context.projectDir}/${file}`;
  if (!existsSync(path) || !statSync(path).isFile()) {
    throw new CiConfigError(from ? `included file ${file} does not exist` : `${file} not found`, from,
      from ? undefined : 'run exec in a git checkout that has one, or pass --file');
  }
  seen.add(file);
  if (seen.size > maxIncludes) throw new CiConfigError(`more than ${maxIncludes} included files`, from);
  const own = readCiYaml(path, file);
  const includes = own.include;
  const includeAt = keyPosition(own, 'include');
  delete own.include;
  let merged = setPosition(newMap(), positionOf(own));
  for (const entry of includeEntries(includes, includeAt)) {
    for (const local of localFiles(context, entry, includeAt)) {
      if (seen.has(local)) continue;
      merged = deepMerge(merged, loadFile(context, local, positionOf(entry) ?? includeAt, seen));
    }
  }
  return deepMerge(merged, own);
}

function includeEntries(value: CiValue | undefined, at: Position | undefined): CiValue[] {
  if (value === undefined || value === null) return [];
  if (value instanceof CiReference) throw new CiConfigError('include: cannot be a !reference', at);
  return Array.isArray(value) ? value.flat(10) : [value];
}

/** The local files one include entry names (none for the kinds we cannot read). */
function localFiles(context: IncludeContext, entry: CiValue, at: Position | undefined): string[] {
  const where = positionOf(entry) ?? at;
  if (typeof entry === 'string') {
    if (/^https?:\/\//.test(entry)) {
      context.warnings.add(`include:remote ${entry}`);
      return [];
    }
    return expandLocal(context, entry, where);
  }
  if (!isCiMap(entry)) throw new CiConfigError('include entries are file names or mappings', where);
  for (const kind of ['remote', 'template', 'project', 'component'] as const) {
    if (kind in entry) {
      context.warnings.add(`include:${kind} ${String(entry[kind])}`);
      return [];
    }
  }
  if (!('local' in entry)) throw new CiConfigError('include needs local:, remote:, template:, project: or component:', where);
  if ('inputs' in entry) context.warnings.add(`include:inputs (${String(entry.local)})`);
  if ('rules' in entry) {
    if (!context.rulesMatch) context.warnings.add(`include:rules (${String(entry.local)})`);
    else if (!context.rulesMatch(entry.rules ?? null, keyPosition(entry, 'rules'))) return [];
  }
  const local = entry.local;
  if (typeof local !== 'string' || local === '') throw new CiConfigError('include:local must be a file name', keyPosition(entry, 'local'));
  return expandLocal(context, local, keyPosition(entry, 'local'));
}

function expandLocal(context: IncludeContext, name: string, at: Position | undefined): string[] {
  const file = normalizePattern(name);
  if (file === '' || file.split('/').includes('..')) throw new CiConfigError(`include:local ${name} is outside the project`, at);
  if (!/\.ya?ml$/.test(file)) throw new CiConfigError(`included file ${name} is not a .yml or .yaml file`, at);
  if (!hasGlob(file)) return [file];
  const matches = matchPaths(context.projectDir, file, (dir) => dir === '.git')
    .filter((entry) => entry.kind === 'file')
    .map((entry) => entry.path);
  // GitLab includes nothing for a glob that matches nothing, silently.
  return matches;
}
