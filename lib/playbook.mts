// Image playbooks: one ansible playbook per image, NAME.yaml or NAME.yml, in
// the configuration directory (/etc/nspawn-runner) or else the state
// directory, the original's search order. The vars of the first play also
// say how the image is made (nspawn_runner_chroot_*) and kept
// (nspawn_runner_maint_recreate), so one file describes an image completely.
import { existsSync, readdirSync } from 'node:fs';
import { SystemError } from './errors.mts';
import { isImageName } from './image.mts';
import type { Settings } from './settings.mts';

/** What a playbook says about its image; unset keys fall back to the command line or defaults. */
/** The tools that can bootstrap an image (nspawn_runner_chroot_bootstrapper). */
export type Bootstrapper = 'debootstrap' | 'mmdebstrap';

export interface PlaybookVars {
  suite?: string;
  mirror?: string;
  arch?: string;
  packages?: string[];
  components?: string[];
  bootstrapper?: Bootstrapper;
  recreate?: boolean;
}

export interface Playbook {
  path: string;
  vars: PlaybookVars;
  /** Things the admin should fix; the playbook is still usable. */
  warnings: string[];
  /** False when ansible-playbook would refuse it outright (empty, or not a list of plays). */
  runnable: boolean;
}

const extensions = ['yaml', 'yml'] as const;

function playbookDirs(settings: Settings): string[] {
  return [settings.configDir, settings.root];
}

/** The playbook of image NAME, or undefined when it has none. */
export function findPlaybook(settings: Settings, name: string): string | undefined {
  for (const dir of playbookDirs(settings)) {
    for (const extension of extensions) {
      const path = `${dir}/${name}.${extension}`;
      if (existsSync(path)) return path;
    }
  }
  return undefined;
}

/** Names of the images that have a playbook. Dot-files and invalid names are never images. */
export function listPlaybookNames(settings: Settings, onIgnored?: (path: string) => void): string[] {
  const names = new Set<string>();
  for (const dir of playbookDirs(settings)) {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const match = /^(.*)\.ya?ml$/.exec(entry);
      if (!match || entry.startsWith('.')) continue;
      if (isImageName(match[1]!)) names.add(match[1]!);
      else onIgnored?.(`${dir}/${entry}`);
    }
  }
  return [...names].sort();
}

/** Reads and narrows a playbook. Throws a SystemError naming file and key when it is broken. */
export async function readPlaybook(path: string): Promise<Playbook> {
  const { readYamlFile } = await import('./yaml-file.mts');
  // Ansible reads YAML 1.1 (yes/no are booleans) and tags values !vault or
  // !unsafe; neither matters for our variables, but must not break parsing.
  const data = readYamlFile(path, {
    version: '1.1',
    logLevel: 'error',
    customTags: [{ tag: '!vault', resolve: (value: string) => value }, { tag: '!unsafe', resolve: (value: string) => value }],
  });
  return { path, ...parsePlaybook(data, path) };
}

type Parsed = Omit<Playbook, 'path'>;

export const playbookVariables = {
  nspawn_runner_chroot_suite: 'suite',
  nspawn_runner_chroot_mirror: 'mirror',
  nspawn_runner_chroot_arch: 'arch',
  nspawn_runner_chroot_packages: 'packages',
  nspawn_runner_chroot_components: 'components',
  nspawn_runner_chroot_bootstrapper: 'bootstrapper',
  nspawn_runner_maint_recreate: 'recreate',
} as const satisfies Record<string, keyof PlaybookVars>;

const prefix = 'nspawn_runner_';

/** Narrows a parsed playbook document to the settings it holds. Pure: tested as a table. */
export function parsePlaybook(data: unknown, path: string): Parsed {
  const warnings: string[] = [];
  if (data === null || data === undefined || (Array.isArray(data) && data.length === 0)) {
    return { vars: {}, warnings: [`${path}: the playbook is empty`], runnable: false };
  }
  if (!Array.isArray(data)) {
    return { vars: {}, warnings: [`${path}: not a playbook: a playbook is a YAML list of plays, this is ${describe(data)}`], runnable: false };
  }
  const [first, ...rest] = data as unknown[];
  // The original reads only the first play; say so when a later one looks configured.
  rest.forEach((play, index) => {
    if (Object.keys(mergeVars(isRecord(play) ? play.vars : undefined)).some((key) => key.startsWith(prefix))) {
      warnings.push(`${path}: play ${index + 2} sets nspawn_runner_* variables, but only the first play's vars are read`);
    }
  });
  if (!isRecord(first)) {
    warnings.push(`${path}: the first play is ${describe(first)}, not a mapping: no nspawn_runner_* variables read`);
    return { vars: {}, warnings, runnable: true };
  }
  if (first.vars === undefined || first.vars === null) {
    warnings.push(`${path}: the first play has no vars: image settings come from the command line and defaults`);
    return { vars: {}, warnings, runnable: true };
  }
  if (!isRecord(first.vars) && !(Array.isArray(first.vars) && first.vars.every(isRecord))) {
    warnings.push(`${path}: vars of the first play is ${describe(first.vars)}, not a mapping: no nspawn_runner_* variables read`);
    return { vars: {}, warnings, runnable: true };
  }
  const vars: PlaybookVars = {};
  for (const [key, value] of Object.entries(mergeVars(first.vars))) {
    if (!key.startsWith(prefix)) continue;
    const field = (playbookVariables as Record<string, keyof PlaybookVars>)[key];
    if (!field) {
      warnings.push(`${path}: unknown variable ${key} ignored (known: ${Object.keys(playbookVariables).join(', ')})`);
      continue;
    }
    if (typeof value === 'string' && value.includes('{{')) {
      warnings.push(`${path}: ${key} is a template, which only ansible can expand: ignored`);
      continue;
    }
    if (value === null || value === undefined) continue;
    setVar(vars, field, value, `${path}: ${key}`);
  }
  return { vars, warnings, runnable: true };
}

function setVar(vars: PlaybookVars, field: keyof PlaybookVars, value: unknown, where: string): void {
  const hint = 'see README.md, "Playbook variables"';
  switch (field) {
    case 'recreate':
      if (typeof value !== 'boolean') throw new SystemError(`${where} must be true or false, not ${describe(value)}`, hint);
      vars.recreate = value;
      return;
    case 'packages':
    case 'components':
      vars[field] = asWordList(value, where, hint);
      return;
    case 'bootstrapper':
      if (value !== 'debootstrap' && value !== 'mmdebstrap') {
        throw new SystemError(`${where} must be debootstrap or mmdebstrap, not ${describe(value)}`, hint);
      }
      vars.bootstrapper = value;
      return;
    default:
      // A suite such as 12 or a mirror written unquoted still means its text.
      if (typeof value !== 'string' && typeof value !== 'number') throw new SystemError(`${where} must be a string, not ${describe(value)}`, hint);
      if (String(value) === '') throw new SystemError(`${where} is empty`, hint);
      vars[field] = String(value);
  }
}

/** A YAML list of words, or one string of words separated by commas or spaces. */
function asWordList(value: unknown, where: string, hint: string): string[] {
  if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean);
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value as string[];
  throw new SystemError(`${where} must be a list of names, not ${describe(value)}`, hint);
}

/** Ansible accepts vars as a mapping or as a list of mappings, merged in order. */
function mergeVars(vars: unknown): Record<string, unknown> {
  if (isRecord(vars)) return vars;
  if (Array.isArray(vars)) return Object.assign({}, ...vars.filter(isRecord)) as Record<string, unknown>;
  return {};
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}
