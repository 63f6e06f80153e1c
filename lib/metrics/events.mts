// The one write prepare, cleanup and gc make for metrics: a line appended to
// <root>/.metrics/events, "<unix time> <name> <value>". One small O_APPEND
// write is atomic against concurrent jobs' writes and costs a stage next to
// nothing; `nspawn-runner metrics` folds the lines into histograms and
// counters (metrics/summary.mts). Nothing here may fail a job.
import { appendFileSync, mkdirSync } from 'node:fs';

export type EventName =
  | 'prepare_seconds' | 'prepare_failed' | 'cleanup_seconds' | 'cleanup_failed'
  | `gc_removed_${'jobs' | 'stray_machines' | 'staging' | 'versions' | 'shifted'}`;

export function metricsDir(root: string): string {
  return `${root}/.metrics`;
}

export function eventsPath(root: string): string {
  return `${metricsDir(root)}/events`;
}

export function recordEvent(root: string, name: EventName, value: number, now = Date.now()): void {
  const line = `${Math.floor(now / 1000)} ${name} ${Number(value.toFixed(6))}\n`;
  try {
    appendFileSync(eventsPath(root), line);
  } catch {
    try {
      mkdirSync(metricsDir(root), { recursive: true, mode: 0o755 });
      appendFileSync(eventsPath(root), line);
    } catch {
      // a full or read-only disk fails the job elsewhere, with a better message
    }
  }
}

/** Seconds since this process started: what a stage took, module loading included. */
export function processSeconds(): number {
  return performance.now() / 1000;
}
