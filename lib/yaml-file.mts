// YAML files read as `unknown`, for parsers to narrow. Its own module so the
// yaml package is loaded only by code that reads YAML (import it lazily).
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { SystemError } from './errors.mts';

export function readYamlFile(path: string): unknown {
  const text = readFileSync(path, 'utf8');
  try {
    return parse(text);
  } catch (error) {
    throw new SystemError(`${path}: not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
}
