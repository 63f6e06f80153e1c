// Disk use of trees, for people (chroot-list, oci-list) and for metrics.
import { zx } from './exec.mts';

/** Bytes a tree takes on its own filesystem (du -x), or null when du cannot tell. */
export async function diskUsage(path: string): Promise<number | null> {
  const $ = await zx();
  const du = await $({ nothrow: true })`du -s -x --block-size=1 -- ${path}`;
  const bytes = Number(du.stdout.split('\t')[0]);
  return du.ok && Number.isFinite(bytes) ? bytes : null;
}

/** 1.5G, 320M, 12K: sizes for people, as du -h prints them. */
export function formatSize(bytes: number | null): string {
  if (bytes === null) return '-';
  const units = ['B', 'K', 'M', 'G', 'T'];
  let value = bytes;
  let unit = 0;
  for (; value >= 1024 && unit < units.length - 1; unit++) value /= 1024;
  return `${value.toFixed(unit && value < 10 ? 1 : 0)}${units[unit]}`;
}
