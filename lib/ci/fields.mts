// The small field types that jobs, rules and workflow share: names, lists,
// `when:`, `allow_failure:`, `needs:`. Each throws a CiConfigError naming
// where the value was written.
import type { AllowFailure, NeedSpec, When } from './model.mts';
import { CiConfigError, isCiMap, positionOf, type CiValue, type Position } from './yaml-source.mts';

export const whenValues: readonly When[] = ['on_success', 'on_failure', 'always', 'manual', 'delayed', 'never'];

export function text(value: CiValue | undefined, where: string, at: Position | undefined): string {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number') return String(value);
  throw new CiConfigError(`${where} must be a string`, positionOf(value) ?? at);
}

export function stringList(value: CiValue, where: string, at: Position | undefined): string[] {
  const list = Array.isArray(value) ? value.flat(10) : typeof value === 'string' ? [value] : undefined;
  if (!list || !list.every((item) => typeof item === 'string' || typeof item === 'number')) {
    throw new CiConfigError(`${where} must be a list of strings`, positionOf(value) ?? at);
  }
  return list.map(String);
}

export function booleanValue(value: CiValue | undefined, where: string, at: Position | undefined): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return value;
  throw new CiConfigError(`${where} must be true or false`, positionOf(value) ?? at);
}

export function parseWhen(value: CiValue | undefined, where: string, at: Position | undefined): When | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string' && (whenValues as readonly string[]).includes(value)) return value as When;
  throw new CiConfigError(`${where} must be one of ${whenValues.join(', ')}`, positionOf(value) ?? at);
}

export function parseAllowFailure(value: CiValue | undefined, where: string, at: Position | undefined): AllowFailure | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return { allowed: value };
  if (isCiMap(value) && Object.keys(value).length === 1 && 'exit_codes' in value) {
    const codes = Array.isArray(value.exit_codes) ? value.exit_codes : [value.exit_codes];
    if (codes.length > 0 && codes.every((code) => typeof code === 'number' && Number.isInteger(code))) {
      return { allowed: true, exitCodes: codes as number[] };
    }
  }
  throw new CiConfigError(`${where} must be true, false or exit_codes: [codes]`, positionOf(value) ?? at);
}

export function parseNeeds(value: CiValue, where: string, at: Position | undefined): NeedSpec[] {
  if (!Array.isArray(value)) throw new CiConfigError(`${where} must be a list`, positionOf(value) ?? at);
  return value.flat(10).map((item) => {
    const itemAt = positionOf(item) ?? at;
    if (typeof item === 'string' && item !== '') return { job: item, artifacts: true, optional: false, at: itemAt };
    if (isCiMap(item)) {
      if ('pipeline' in item || 'project' in item) {
        throw new CiConfigError(`${where}: needs from other pipelines or projects cannot run locally`, itemAt);
      }
      const job = text(item.job, `${where}: job`, itemAt);
      const need: NeedSpec = {
        job,
        artifacts: booleanValue(item.artifacts, `${where}: artifacts`, itemAt) ?? true,
        optional: booleanValue(item.optional, `${where}: optional`, itemAt) ?? false,
        at: itemAt,
      };
      if (isCiMap(item.parallel) && Array.isArray(item.parallel.matrix)) {
        need.matrix = item.parallel.matrix.map((entry) => {
          if (!isCiMap(entry)) throw new CiConfigError(`${where}: parallel:matrix entries are mappings`, itemAt);
          return Object.fromEntries(Object.entries(entry).map(([key, v]) => [key, text(v, `${where}: ${key}`, itemAt)]));
        });
      }
      return need;
    }
    throw new CiConfigError(`${where}: each need is a job name or a mapping with job:`, itemAt);
  });
}
