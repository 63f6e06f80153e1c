// CI variables: what `variables:` may hold, and how values that name other
// variables are expanded. gitlab-runner expands each value with the job's
// other variables (os.Expand: `$NAME` and `${NAME}`, `$$` for a literal `$`,
// an unknown name becomes empty) unless it is marked `expand: false`; a value
// naming itself, directly or through others, stops there.
import { CiConfigError, isCiMap, keyPosition, positionOf, type CiValue, type Position } from './yaml-source.mts';

export interface Variable {
  value: string;
  /** `expand: false`: taken as written. */
  raw: boolean;
}

/** Names in definition order; a later layer's definition wins. */
export type Variables = ReadonlyMap<string, Variable>;

const namePattern = /^[A-Za-z0-9_]+$/;

export function isVariableName(name: string): boolean {
  return namePattern.test(name);
}

/** `variables:` of the configuration, a job or a rule. */
export function parseVariables(value: CiValue | undefined, at: Position | undefined, where: string): Map<string, Variable> {
  const variables = new Map<string, Variable>();
  if (value === undefined || value === null) return variables;
  if (!isCiMap(value)) throw new CiConfigError(`${where} must be a mapping of names to values`, positionOf(value) ?? at);
  for (const [name, item] of Object.entries(value)) {
    const itemAt = keyPosition(value, name);
    if (!isVariableName(name)) throw new CiConfigError(`${where}: invalid variable name ${JSON.stringify(name)} (letters, digits and _ only)`, itemAt);
    if (isCiMap(item)) {
      for (const key of Object.keys(item)) {
        if (!['value', 'description', 'options', 'expand'].includes(key)) {
          throw new CiConfigError(`${where}: variable ${name} has an unknown key ${key}`, keyPosition(item, key));
        }
      }
      if (item.expand !== undefined && typeof item.expand !== 'boolean') {
        throw new CiConfigError(`${where}: ${name}: expand must be true or false`, keyPosition(item, 'expand'));
      }
      variables.set(name, { value: scalarText(item.value ?? '', `${where}: ${name}: value`, keyPosition(item, 'value') ?? itemAt), raw: item.expand === false });
    } else {
      variables.set(name, { value: scalarText(item, `${where}: ${name}`, itemAt), raw: false });
    }
  }
  return variables;
}

function scalarText(value: CiValue, where: string, at: Position | undefined): string {
  if (value === null) return '';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new CiConfigError(`${where} must be a string or a number`, positionOf(value) ?? at);
}

export function variablesFrom(record: Record<string, string>): Map<string, Variable> {
  return new Map(Object.entries(record).map(([name, value]) => [name, { value, raw: false }]));
}

/** Layers from lowest to highest precedence, merged. */
export function mergeVariables(...layers: Variables[]): Map<string, Variable> {
  const merged = new Map<string, Variable>();
  for (const layer of layers) {
    for (const [name, variable] of layer) {
      merged.delete(name);
      merged.set(name, variable);
    }
  }
  return merged;
}

/** os.Expand with gitlab-runner's mapping: `$$` is `$`, an unknown name is empty. */
export function expandText(text: string, lookup: (name: string) => string | undefined): string {
  return text.replace(/\$(?:\$|\{(\w+)\}|(\w+))/g, (whole, braced: string | undefined, plain: string | undefined) => {
    if (whole === '$$') return '$';
    return lookup((braced ?? plain)!) ?? '';
  });
}

/** Every variable with its value expanded, in definition order. */
export function expandVariables(variables: Variables): Map<string, string> {
  const done = new Map<string, string>();
  const expand = (name: string, stack: readonly string[]): string | undefined => {
    const known = done.get(name);
    if (known !== undefined) return known;
    const variable = variables.get(name);
    if (!variable) return undefined;
    if (stack.includes(name)) return '';
    const value = variable.raw ? variable.value : expandText(variable.value, (other) => expand(other, [...stack, name]));
    if (stack.length === 0) done.set(name, value);
    return value;
  };
  for (const name of variables.keys()) expand(name, []);
  return done;
}
