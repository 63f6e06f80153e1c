// A small, strict parser of the Prometheus text exposition format (0.0.4),
// the one node_exporter's textfile collector reads. Strict where the
// collector or Prometheus would refuse or misread: names, label syntax and
// escapes, values, one HELP and TYPE per family before its samples, a
// family's samples together, no duplicate series, histograms with
// cumulative buckets ending in +Inf equal to _count, and a final newline.
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  type: MetricType;
  help?: string;
  samples: ParsedSample[];
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const types = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, where: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

/** Labels from just after "{" to the matching "}"; returns them and the rest of the line. */
function parseLabels(text: string, where: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let at = 0;
  for (;;) {
    if (text[at] === '}') return { labels, rest: text.slice(at + 1) };
    const name = /^[^=]*/.exec(text.slice(at))![0];
    if (!labelName.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    at += name.length;
    if (text.slice(at, at + 2) !== '="') throw new Error(`${where}: label ${name} without ="value"`);
    at += 2;
    let value = '';
    for (;;) {
      const char = text[at++];
      if (char === undefined) throw new Error(`${where}: unterminated label value`);
      if (char === '"') break;
      if (char === '\\') {
        const escaped = text[at++];
        if (escaped === 'n') value += '\n';
        else if (escaped === '\\' || escaped === '"') value += escaped;
        else throw new Error(`${where}: bad escape \\${escaped}`);
      } else {
        value += char;
      }
    }
    labels[name] = value;
    if (text[at] === ',') at++;
    else if (text[at] !== '}') throw new Error(`${where}: expected "," or "}" after label ${name}`);
  }
}

/** The family a sample belongs to: histogram and summary samples carry suffixes. */
function familyOf(sample: string, families: Map<string, ParsedFamily>): ParsedFamily | undefined {
  if (families.has(sample)) return families.get(sample);
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = sample.slice(0, -suffix.length);
    const family = sample.endsWith(suffix) ? families.get(base) : undefined;
    if (family && (family.type === 'histogram' || (family.type === 'summary' && suffix !== '_bucket'))) return family;
  }
  return undefined;
}

export function parsePrometheusText(text: string): Map<string, ParsedFamily> {
  if (!text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  const families = new Map<string, ParsedFamily>();
  const finished = new Set<string>();
  const typed = new Set<string>();
  const seen = new Set<string>();
  let current: ParsedFamily | undefined;
  text.slice(0, -1).split('\n').forEach((line, index) => {
    const where = `line ${index + 1}`;
    if (line.trim() === '') return;
    const comment = /^#\s*(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
    if (comment) {
      const [, kind, name, rest = ''] = comment as unknown as [string, string, string, string?];
      if (!metricName.test(name)) throw new Error(`${where}: bad metric name ${JSON.stringify(name)}`);
      if (finished.has(name)) throw new Error(`${where}: family ${name} continues after another family`);
      let family = families.get(name);
      if (family && family.samples.length) throw new Error(`${where}: ${kind} of ${name} after its samples`);
      if (!family) {
        family = { name, type: 'untyped', samples: [] };
        families.set(name, family);
      }
      if (current && current !== family) finished.add(current.name);
      current = family;
      if (kind === 'TYPE') {
        if (!types.has(rest.trim())) throw new Error(`${where}: unknown type ${JSON.stringify(rest)}`);
        if (typed.has(name)) throw new Error(`${where}: second TYPE for ${name}`);
        family.type = rest.trim() as MetricType;
        typed.add(name);
      } else {
        if (family.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        family.help = rest;
      }
      return;
    }
    if (line.startsWith('#')) return;
    const name = /^[^{\s]*/.exec(line)![0];
    if (!metricName.test(name)) throw new Error(`${where}: bad metric name ${JSON.stringify(name)}`);
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest.slice(1), where));
    const fields = rest.trim().split(/\s+/);
    if (!rest.startsWith(' ') || fields.length < 1 || fields.length > 2) throw new Error(`${where}: expected " VALUE [TIMESTAMP]"`);
    if (fields[1] !== undefined && !/^-?\d+$/.test(fields[1])) throw new Error(`${where}: bad timestamp`);
    const value = parseValue(fields[0]!, where);
    let family = familyOf(name, families);
    if (!family) {
      family = { name, type: 'untyped', samples: [] };
      families.set(name, family);
    }
    if (finished.has(family.name)) throw new Error(`${where}: samples of ${family.name} are not together`);
    if (current && current !== family) finished.add(current.name);
    current = family;
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`${where}: series ${key} twice`);
    seen.add(key);
    family.samples.push({ name, labels, value });
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

function checkHistogram(family: ParsedFamily): void {
  const groups = new Map<string, ParsedSample[]>();
  for (const sample of family.samples) {
    const { le: _le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    groups.set(key, [...(groups.get(key) ?? []), sample]);
  }
  for (const samples of groups.values()) {
    const buckets = samples.filter((sample) => sample.name === `${family.name}_bucket`);
    if (buckets.some((bucket) => bucket.labels.le === undefined)) throw new Error(`${family.name}: a bucket without le`);
    const bounds = buckets.map((bucket) => parseValue(bucket.labels.le!, family.name));
    if (bounds.some((bound, index) => index > 0 && bound <= bounds[index - 1]!)) throw new Error(`${family.name}: buckets out of order`);
    if (bounds.at(-1) !== Infinity) throw new Error(`${family.name}: no +Inf bucket`);
    if (buckets.some((bucket, index) => index > 0 && bucket.value < buckets[index - 1]!.value)) throw new Error(`${family.name}: buckets not cumulative`);
    const count = samples.find((sample) => sample.name === `${family.name}_count`);
    if (!count || !samples.some((sample) => sample.name === `${family.name}_sum`)) throw new Error(`${family.name}: no _sum or _count`);
    if (count.value !== buckets.at(-1)!.value) throw new Error(`${family.name}: +Inf bucket ${buckets.at(-1)!.value} is not _count ${count.value}`);
  }
}

/** The value of one series, or undefined. */
export function sampleValue(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    const found = family.samples.find((sample) => sample.name === name &&
      Object.keys(labels).length === Object.keys(sample.labels).length &&
      Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
    if (found) return found.value;
  }
  return undefined;
}
