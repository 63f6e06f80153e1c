// The metrics kept in the state directory: prepare and cleanup duration
// histograms and counters, folded from the events that stages append
// (events.mts) into <root>/.metrics/summary.json by `nspawn-runner metrics`.
//
// Folding renames the events file first, so stages append to a new one
// meanwhile, then records the renamed file's name in the summary it writes
// before deleting the file: a fold that died half-way is never counted twice.
// A stage that opened the events file just before the rename and writes just
// after it is read loses its line: a window of microseconds, accepted.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tryLock } from '../lock.mts';
import { eventsPath, metricsDir } from './events.mts';

/** Upper bounds of the duration buckets, in seconds. */
export const durationBuckets = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] as const;

export interface Histogram {
  /** Observations at or below each of durationBuckets (cumulative, as Prometheus has them). */
  buckets: number[];
  sum: number;
  count: number;
}

export interface Summary {
  histograms: { prepare: Histogram; cleanup: Histogram };
  /** Counters by event name: prepare_failed, cleanup_failed, gc_removed_*. */
  counters: Record<string, number>;
  /** Disk usage of image trees, measured once per immutable version (image-metrics.mts). */
  imageSizes: Record<string, { bytes: number; at: number }>;
  /** The events file this summary last folded (see the header). */
  folded?: string;
}

export function emptyHistogram(): Histogram {
  return { buckets: durationBuckets.map(() => 0), sum: 0, count: 0 };
}

export function emptySummary(): Summary {
  return { histograms: { prepare: emptyHistogram(), cleanup: emptyHistogram() }, counters: {}, imageSizes: {} };
}

export function observe(histogram: Histogram, seconds: number): void {
  durationBuckets.forEach((bound, index) => {
    if (seconds <= bound) histogram.buckets[index]!++;
  });
  histogram.sum += seconds;
  histogram.count++;
}

/** Adds the lines of an events file to summary; malformed lines (a torn write after a crash) are skipped. */
export function applyEvents(summary: Summary, text: string): void {
  for (const line of text.split('\n')) {
    const match = /^\d+ ([a-z_]+) (\d+(?:\.\d+)?)$/.exec(line);
    if (!match) continue;
    const [, name, raw] = match as unknown as [string, string, string];
    const value = Number(raw);
    if (name === 'prepare_seconds') observe(summary.histograms.prepare, value);
    else if (name === 'cleanup_seconds') observe(summary.histograms.cleanup, value);
    else summary.counters[name] = (summary.counters[name] ?? 0) + value;
  }
}

function summaryPath(root: string): string {
  return `${metricsDir(root)}/summary.json`;
}

export function readSummary(root: string): Summary {
  try {
    const read = JSON.parse(readFileSync(summaryPath(root), 'utf8')) as Summary;
    return { ...emptySummary(), ...read };
  } catch {
    return emptySummary();
  }
}

export function writeSummary(root: string, summary: Summary): void {
  const path = summaryPath(root);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(summary)}\n`, { mode: 0o644 });
  renameSync(`${path}.tmp`, path);
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The summary with every event so far. With the lock (one folder at a time)
 * the events are folded in and the file goes; without it, another metrics
 * run is folding: they are only added to what is returned.
 */
export function foldEvents(root: string): { summary: Summary; save: (summary: Summary) => void } {
  const dir = metricsDir(root);
  if (!existsSync(root)) return { summary: emptySummary(), save: () => undefined };
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const lock = tryLock(`${dir}/.lock`, 'metrics');
  const summary = readSummary(root);
  if (!('release' in lock)) {
    applyEvents(summary, readText(eventsPath(root)));
    return { summary, save: () => undefined };
  }
  try {
    // Left by a fold that died: applied already if the summary names it.
    for (const name of readdirSync(dir).filter((entry) => entry.startsWith('events.folding-'))) {
      if (name !== summary.folded) applyEvents(summary, readText(`${dir}/${name}`));
      rmSync(`${dir}/${name}`, { force: true });
    }
    const folding = `events.folding-${process.pid}-${Date.now()}`;
    try {
      renameSync(eventsPath(root), `${dir}/${folding}`);
      applyEvents(summary, readText(`${dir}/${folding}`));
      summary.folded = folding;
    } catch {
      // no events since the last fold
    }
    writeSummary(root, summary);
    rmSync(`${dir}/${folding}`, { force: true });
    return { summary, save: (changed) => saveImageSizes(root, changed.imageSizes) };
  } finally {
    lock.release();
  }
}

/** Stores measured image sizes into the summary as it is now (another fold may have come since). */
function saveImageSizes(root: string, imageSizes: Summary['imageSizes']): void {
  const lock = tryLock(`${metricsDir(root)}/.lock`, 'metrics');
  if (!('release' in lock)) return;
  try {
    writeSummary(root, { ...readSummary(root), imageSizes });
  } finally {
    lock.release();
  }
}
