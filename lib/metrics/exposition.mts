// Prometheus text exposition format (version 0.0.4), which node_exporter's
// textfile collector reads: per family "# HELP", "# TYPE", then its samples.
import { durationBuckets, type Histogram } from './summary.mts';

export interface Sample {
  labels?: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter' | 'histogram';
  samples?: Sample[];
  /** For type histogram. */
  histogram?: Histogram;
}

function escapeLabel(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

function escapeHelp(text: string): string {
  return text.replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
}

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function series(name: string, labels: Record<string, string> | undefined, value: number): string {
  const pairs = Object.entries(labels ?? {}).map(([key, label]) => `${key}="${escapeLabel(label)}"`);
  return `${name}${pairs.length ? `{${pairs.join(',')}}` : ''} ${formatValue(value)}`;
}

export function renderFamilies(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    if (family.type === 'histogram') {
      const histogram = family.histogram!;
      durationBuckets.forEach((bound, index) => lines.push(series(`${family.name}_bucket`, { le: String(bound) }, histogram.buckets[index]!)));
      lines.push(series(`${family.name}_bucket`, { le: '+Inf' }, histogram.count));
      lines.push(series(`${family.name}_sum`, undefined, histogram.sum), series(`${family.name}_count`, undefined, histogram.count));
    } else {
      for (const sample of family.samples ?? []) lines.push(series(family.name, sample.labels, sample.value));
    }
  }
  return `${lines.join('\n')}\n`;
}
