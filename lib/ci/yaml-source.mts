// A .gitlab-ci.yml file as plain values that remember where they were
// written, so every error can say file:line:col. GitLab reads its YAML with
// Ruby's Psych (YAML 1.1: `<<` merge keys, yes/no booleans, duplicate keys
// where the last wins), and so do we, through the `yaml` package's syntax
// tree rather than its toJS(): `!reference [job, key]` becomes a
// CiReference resolved later (reference.mts), and positions are kept in
// WeakMaps beside the values instead of inside them.
import { readFileSync } from 'node:fs';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from 'yaml';
import { JobError } from '../errors.mts';

export interface Position {
  /** As the user would write it: relative to the project directory. */
  file: string;
  line: number;
  col: number;
}

export type CiValue = null | string | number | boolean | CiValue[] | CiMap | CiReference;
export interface CiMap {
  [key: string]: CiValue;
}

/** `!reference [job, key, ...]`, resolved against the whole configuration. */
export class CiReference {
  readonly path: readonly string[];
  readonly at: Position;

  constructor(path: readonly string[], at: Position) {
    this.path = path;
    this.at = at;
  }

  toString(): string {
    return `!reference [${this.path.join(', ')}]`;
  }
}

export function formatPosition(at: Position): string {
  return `${at.file}:${at.line}:${at.col}`;
}

/** Bad input in the CI configuration: one line, file:line:col first when known. */
export class CiConfigError extends JobError {
  constructor(message: string, at?: Position, hint?: string) {
    super(at ? `${formatPosition(at)}: ${message}` : message, hint);
    this.name = 'CiConfigError';
  }
}

const positions = new WeakMap<object, Position>();
const keyPositions = new WeakMap<object, Map<string, Position>>();

export function positionOf(value: CiValue | undefined): Position | undefined {
  return typeof value === 'object' && value !== null ? (value instanceof CiReference ? value.at : positions.get(value)) : undefined;
}

/** Where key was written in map, else where the map was. */
export function keyPosition(map: CiMap, key: string): Position | undefined {
  return keyPositions.get(map)?.get(key) ?? positions.get(map);
}

export function setPosition<T extends object>(value: T, at: Position | undefined): T {
  if (at) positions.set(value, at);
  return value;
}

export function setKeyPosition(map: CiMap, key: string, at: Position | undefined): void {
  if (!at) return;
  let keys = keyPositions.get(map);
  if (!keys) keyPositions.set(map, (keys = new Map()));
  keys.set(key, at);
}

export function newMap(): CiMap {
  return Object.create(null) as CiMap;
}

export function isCiMap(value: CiValue | undefined): value is CiMap {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof CiReference);
}

/** Aliases can multiply a small file into a huge tree ("billion laughs"): stop early. */
const maxNodes = 500_000;

export function parseCiYaml(text: string, file: string): CiMap {
  const lines = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter: lines, version: '1.1', uniqueKeys: false, prettyErrors: false });
  const docs = Array.isArray(documents) ? documents : [];
  const at = (offset: number | undefined): Position => {
    const { line, col } = lines.linePos(offset ?? 0);
    return { file, line, col };
  };
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error) throw new CiConfigError(`invalid YAML: ${error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`, at(error.pos[0]));
  }
  // A header document (`spec: inputs:`) may come before the configuration.
  let doc: Document | undefined = docs[0];
  if (docs.length > 1) {
    const header = convert(docs[0]!, at);
    if (!isCiMap(header) || !('spec' in header)) {
      throw new CiConfigError('more than one YAML document, and the first is not a `spec:` header', at(docs[1]!.range[0]));
    }
    doc = docs[1];
  }
  const value = doc ? convert(doc, at) : null;
  if (value === null) return setPosition(newMap(), at(0));
  if (!isCiMap(value)) throw new CiConfigError('the configuration must be a mapping of keywords and jobs', positionOf(value) ?? at(0));
  return value;
}

export function readCiYaml(path: string, file: string): CiMap {
  return parseCiYaml(readFileSync(path, 'utf8'), file);
}

/** The header document's `spec:` keys, when the file has one (GitLab's `spec: inputs:`). */
export function hasSpecHeader(text: string): boolean {
  return /^spec:/m.test(text) && /^---\s*$/m.test(text);
}

function convert(doc: Document, at: (offset: number | undefined) => Position): CiValue {
  let count = 0;
  const walk = (node: unknown, depth: number): CiValue => {
    if (++count > maxNodes || depth > 200) throw new CiConfigError('the configuration is too large or too deeply nested (aliases?)', at(0));
    if (node === null || node === undefined) return null;
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (!target) throw new CiConfigError(`unknown alias *${node.source}`, at(node.range?.[0]));
      return walk(target, depth + 1);
    }
    const position = at((node as Node).range?.[0]);
    if (isScalar(node)) {
      if (node.tag === '!reference') throw new CiConfigError('!reference takes a sequence: !reference [job, key]', position);
      return scalarValue(node.value, node.source, node.type);
    }
    if (isSeq(node)) {
      const items = node.items.map((item) => walk(item, depth + 1));
      if (node.tag === '!reference') {
        if (items.length === 0 || !items.every((item) => typeof item === 'string' || typeof item === 'number')) {
          throw new CiConfigError('!reference takes a list of names: !reference [job, key]', position);
        }
        return new CiReference(items.map(String), position);
      }
      return setPosition(items, position);
    }
    if (isMap(node)) {
      const map = setPosition(newMap(), position);
      const merges: CiMap[] = [];
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const keyAt = at(keyNode?.range?.[0] ?? (node.range?.[0]));
        if (isScalar(keyNode) && (typeof keyNode.value === 'symbol' || (keyNode.source === '<<' && keyNode.type === 'PLAIN'))) {
          // YAML 1.1 merge keys: `<<: *anchor` or `<<: [*a, *b]`, explicit keys win.
          const merged = walk(pair.value, depth + 1);
          for (const source of Array.isArray(merged) ? merged : [merged]) {
            if (!isCiMap(source)) throw new CiConfigError('<< merges only mappings', keyAt);
            merges.push(source);
          }
          continue;
        }
        const key = keyText(keyNode, keyAt);
        map[key] = walk(pair.value, depth + 1);
        setKeyPosition(map, key, keyAt);
      }
      for (const source of merges) {
        for (const [key, value] of Object.entries(source)) {
          if (!(key in map)) {
            map[key] = value;
            setKeyPosition(map, key, keyPosition(source, key));
          }
        }
      }
      return map;
    }
    throw new CiConfigError('unsupported YAML node', position);
  };
  return walk(doc.contents, 0);
}

/** Keys are names as written: Psych would read `on:` as true, GitLab then rejects it. */
function keyText(node: Node | null, at: Position): string {
  if (isScalar(node)) {
    if (node.type === 'PLAIN' && typeof node.source === 'string') return node.source;
    const value = node.value;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
    if (value === null) return '';
  }
  throw new CiConfigError('keys must be plain names', at);
}

function scalarValue(value: unknown, source: string | undefined, type: string | undefined): CiValue {
  // yaml's 1.1 schema reads y and n as booleans; Psych does not.
  if (type === 'PLAIN' && source !== undefined && /^[yYnN]$/.test(source)) return source;
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(source ?? value);
  if (typeof value === 'bigint') return String(value);
  // Timestamps and other tagged scalars: what was written.
  return source ?? String(value);
}
