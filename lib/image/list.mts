// chroot-list: every image, one row each. Images are the union of image
// directories, playbooks, and stores whose versions jobs still use.
import { readdirSync, realpathSync } from 'node:fs';
import { isSubvolume } from '../btrfs.mts';
import { diskUsage, formatSize } from '../disk.mts';
import { imagePath, imagesDir, isImageName, listImageNames } from './resolve.mts';
import { readImageMeta, type ImageMeta } from './meta.mts';
import { jobsOnImage } from './retire.mts';
import { currentVersion, layoutOf, listVersions, type ImageLayout } from './store.mts';
import { listJobRecords } from '../job/record.mts';
import { imagePersonality } from './personality.mts';
import { findPlaybook, listPlaybookNames } from './playbook.mts';
import type { Settings } from '../settings.mts';

/** One image, as `chroot-list --json` prints it. */
export interface ImageRow {
  name: string;
  /** <root>/NAME, what jobs name. */
  path: string;
  layout: ImageLayout;
  /** The real directory new jobs start from; null when missing. */
  tree: string | null;
  version: string | null;
  storage: 'subvolume' | 'directory' | null;
  /** Disk usage of the tree (du); shared blocks of snapshots and reflinks count in full. */
  sizeBytes: number | null;
  personality: string | null;
  playbook: string | null;
  created: ImageMeta['created'] | null;
  lastMaintenance: ImageMeta['maintained'] | null;
  jobs: Array<{ jobId: string; tree: string; since: string }>;
  /** Every version in the store, in service or kept for running jobs. */
  versions: string[];
}

export function listAllImageNames(settings: Settings): string[] {
  let stores: string[] = [];
  try {
    stores = readdirSync(imagesDir(settings)).filter((name) => isImageName(name) && listVersions(settings, name).length > 0);
  } catch {
    // no store yet
  }
  return [...new Set([...listImageNames(settings), ...listPlaybookNames(settings), ...stores])].sort();
}

export async function listImages(settings: Settings, withSize = true): Promise<ImageRow[]> {
  const records = listJobRecords(settings);
  const rows: ImageRow[] = [];
  for (const name of listAllImageNames(settings)) {
    const layout = layoutOf(settings, name);
    let tree: string | null = null;
    try {
      if (layout !== 'missing') tree = realpathSync(imagePath(settings, name));
    } catch {
      // a dangling symlink: listed as having no tree
    }
    const meta = readImageMeta(settings, name);
    rows.push({
      name,
      path: imagePath(settings, name),
      layout,
      tree,
      version: currentVersion(settings, name) ?? null,
      storage: tree === null ? null : isSubvolume(tree) ? 'subvolume' : 'directory',
      sizeBytes: tree !== null && withSize ? await diskUsage(tree) : null,
      personality: (tree && imagePersonality(tree)) ?? null,
      playbook: findPlaybook(settings, name) ?? null,
      created: meta.created ?? null,
      lastMaintenance: meta.maintained ?? null,
      jobs: jobsOnImage(settings, name, records).map((record) => ({ jobId: record.jobId, tree: record.imagePath, since: record.createdAt })),
      versions: listVersions(settings, name),
    });
  }
  return rows;
}


function formatMaintenance(maintained: ImageMeta['maintained'] | null): string {
  if (!maintained) return '-';
  const at = maintained.at.replace('T', ' ').replace(/:\d\d\.\d+Z$/, 'Z');
  return `${at} ${maintained.how}${maintained.ok ? '' : ' FAILED'}`;
}

/** The human table: one row per image, columns padded. */
export function formatImageTable(rows: ImageRow[]): string {
  const header = ['NAME', 'STORAGE', 'SIZE', 'LAST MAINTENANCE', 'JOBS', 'PLAYBOOK', 'PATH'];
  const lines = rows.map((row) => [
    row.name,
    row.storage ? `${row.storage}${row.layout === 'versioned' ? '' : ` (${row.layout})`}` : row.layout,
    formatSize(row.sizeBytes),
    formatMaintenance(row.lastMaintenance),
    row.jobs.length ? row.jobs.map((job) => job.jobId).join(',') : '-',
    row.playbook ?? '-',
    row.tree && row.tree !== row.path ? `${row.path} -> ${row.tree}` : row.path,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)));
  return [header, ...lines].map((line) => line.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()).join('\n') + '\n';
}
