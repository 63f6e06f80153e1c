// `nspawn-runner metrics`: what the runner has now (jobs, images) and what it
// did (the folded summary), as Prometheus families.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { run } from '../exec.mts';
import { listJobStatus, type JobHealth } from '../job/gc.mts';
import { imagePath } from '../image/resolve.mts';
import { listAllImageNames } from '../image/list.mts';
import { readImageMeta } from '../image/meta.mts';
import { currentVersion, layoutOf } from '../image/store.mts';
import type { Settings } from '../settings.mts';
import type { Family } from './exposition.mts';
import { foldEvents, type Summary } from './summary.mts';

const healths: JobHealth[] = ['preparing', 'running', 'kept', 'orphaned'];
const gcKinds = ['jobs', 'stray_machines', 'staging', 'versions', 'shifted'] as const;
/** A plain or linked image can change under the same path: its size is measured again after this long. */
const mutableSizeMaxAgeMs = 3600_000;

async function diskUsage(path: string): Promise<number | undefined> {
  const result = await run(['du', '-s', '-x', '--block-size=1', '--', path]);
  const bytes = Number(result.stdout.split('\t')[0]);
  return result.code === 0 && Number.isFinite(bytes) ? bytes : undefined;
}

/** When the version in service was made: from its name (image/store.mts), else the tree's mtime. */
export function versionTime(version: string | undefined, tree: string): number {
  const stamp = version && /(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z/.exec(version);
  if (stamp) return Date.UTC(Number(stamp[1]), Number(stamp[2]) - 1, Number(stamp[3]), Number(stamp[4]), Number(stamp[5]), Number(stamp[6]));
  return statSync(tree).mtimeMs;
}

interface ImageFacts {
  name: string;
  sizeBytes?: number;
  ageSeconds: number;
  maintained?: boolean;
}

async function imageFacts(settings: Settings, summary: Summary, withSize: boolean, now: number): Promise<ImageFacts[]> {
  const facts: ImageFacts[] = [];
  const sizes: Summary['imageSizes'] = {};
  for (const name of listAllImageNames(settings)) {
    const layout = layoutOf(settings, name);
    if (layout === 'missing') continue;
    let tree: string;
    try {
      tree = realpathSync(imagePath(settings, name));
    } catch {
      continue;
    }
    const version = currentVersion(settings, name);
    let size: { bytes: number; at: number } | undefined = summary.imageSizes[tree];
    // A version never changes once made; other trees may.
    const stale = !size || (layout !== 'versioned' && now - size.at > mutableSizeMaxAgeMs);
    if (withSize && stale) {
      const bytes = await diskUsage(tree);
      size = bytes === undefined ? undefined : { bytes, at: now };
    }
    if (size) sizes[tree] = size;
    const { maintained } = readImageMeta(settings, name);
    facts.push({ name, sizeBytes: size?.bytes, ageSeconds: Math.max(0, Math.round((now - versionTime(version, tree)) / 1000)), maintained: maintained?.ok });
  }
  // Sizes of trees that are gone are forgotten.
  summary.imageSizes = Object.fromEntries(Object.entries(sizes).filter(([tree]) => existsSync(tree)));
  return facts;
}

export async function collectMetrics(settings: Settings, options: { withSize: boolean; now?: number }): Promise<Family[]> {
  const now = options.now ?? Date.now();
  const { summary, save } = foldEvents(settings.root);
  const jobs = await listJobStatus(settings);
  const images = await imageFacts(settings, summary, options.withSize, now);
  save(summary);
  const counter = (name: string) => summary.counters[name] ?? 0;
  return [
    {
      name: 'nspawn_runner_jobs', type: 'gauge', help: 'Jobs of this runner by health: preparing, running, kept (keep_failed), orphaned (gc removes them).',
      samples: healths.map((health) => ({ labels: { state: health }, value: jobs.filter((job) => job.health === health).length })),
    },
    { name: 'nspawn_runner_prepare_duration_seconds', type: 'histogram', help: 'How long each successful prepare took.', histogram: summary.histograms.prepare },
    { name: 'nspawn_runner_prepare_failures_total', type: 'counter', help: 'Prepares that failed.', samples: [{ value: counter('prepare_failed') }] },
    { name: 'nspawn_runner_cleanup_duration_seconds', type: 'histogram', help: 'How long each successful cleanup took.', histogram: summary.histograms.cleanup },
    { name: 'nspawn_runner_cleanup_failures_total', type: 'counter', help: 'Cleanups that failed.', samples: [{ value: counter('cleanup_failed') }] },
    {
      name: 'nspawn_runner_gc_removed_total', type: 'counter', help: 'What gc (and the sweep every prepare runs) removed, by kind.',
      samples: gcKinds.map((kind) => ({ labels: { kind }, value: counter(`gc_removed_${kind}`) })),
    },
    {
      name: 'nspawn_runner_image_size_bytes', type: 'gauge', help: 'Disk usage of the version of each image in service (du; blocks shared with other versions count in full).',
      samples: images.filter((image) => image.sizeBytes !== undefined).map((image) => ({ labels: { image: image.name }, value: image.sizeBytes! })),
    },
    {
      name: 'nspawn_runner_image_age_seconds', type: 'gauge', help: 'Time since the version of each image in service was made.',
      samples: images.map((image) => ({ labels: { image: image.name }, value: image.ageSeconds })),
    },
    {
      name: 'nspawn_runner_image_last_maintenance_success', type: 'gauge', help: '1 when the last creation, maintenance or login of the image succeeded, 0 when it failed.',
      samples: images.filter((image) => image.maintained !== undefined).map((image) => ({ labels: { image: image.name }, value: image.maintained ? 1 : 0 })),
    },
  ];
}
