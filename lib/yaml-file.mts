// YAML files read as `unknown`, for parsers to narrow. Its own module so the
// yaml package is loaded only by code that reads YAML (import it lazily).
import { readFileSync } from 'node:fs';
import { parse, type DocumentOptions, type ParseOptions, type SchemaOptions } from 'yaml';
import { SystemError } from './errors.mts';

export type YamlOptions = ParseOptions & DocumentOptions & SchemaOptions;

export function readYamlFile(path: string, options: YamlOptions = {}): unknown {
  const text = readFileSync(path, 'utf8');
  try {
    return parse(text, options);
  } catch (error) {
    throw new SystemError(`${path}: not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
}
