// private_users on overlay storage. nspawn can idmap a directory root (a
// btrfs snapshot) but not an overlay, and chowning a job's overlay would copy
// the whole image up. So each image tree gets one uid-shifted copy, made the
// first time a user-namespaced job needs it and shared by every such job on
// that tree: its files belong to BASE + their uid, and machines run with
// --private-users=BASE:65536 over it. An image version never changes, so its
// copy never goes stale; it is deleted with its version (image/retire.mts)
// or by gc once its source is gone.
//
// <root>/.users/<key>/         the shifted tree
// <root>/.users/<key>.json     { source, base }: what it was made from
import { createHash } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { SystemError } from '../errors.mts';
import { zx } from '../exec.mts';
import { log } from '../log.mts';
import { removeTree } from '../mounts.mts';
import { isOwnerRunning, ownerMark } from '../proc.mts';
import type { Settings } from '../settings.mts';

/** Ranges nspawn itself picks from (systemd-nspawn(1), --private-users=pick); each is 65536 ids. */
const firstBase = 0x00080000;
const rangeCount = (0x6fff0000 - firstBase) / 0x10000;
export const rangeSize = 0x10000;

export interface ShiftedTree {
  path: string;
  /** Host uid and gid of the machine's root. */
  base: number;
}

export function shiftedDir(settings: Settings): string {
  return `${settings.root}/.users`;
}

/** A key and a uid base, both derived from the source tree's real path. */
export function shiftedKey(source: string): { key: string; base: number } {
  const digest = createHash('sha256').update(source).digest();
  return { key: digest.toString('hex').slice(0, 16), base: firstBase + (digest.readUInt32BE(0) % rangeCount) * rangeSize };
}

/** The nspawn flags for a machine over a tree shifted to base: the ids are already right, nothing to map. */
export function shiftedUserArgs(base: number): string[] {
  return [`--private-users=${base}:${rangeSize}`, '--private-users-ownership=off'];
}

/**
 * The shifted copy of source, made now if missing. Two prepares may make it
 * at once: each works in a staging directory of its own and the first rename
 * wins, so no job ever sees a half-shifted tree.
 */
export async function ensureShiftedTree(settings: Settings, source: string): Promise<ShiftedTree> {
  const { key, base } = shiftedKey(source);
  const dir = shiftedDir(settings);
  const path = `${dir}/${key}`;
  if (existsSync(path)) return { path, base };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The name carries the owner (ownerMark): a file inside would end up in the machines' root.
  const staging = `${dir}/.staging-${key}-${ownerMark().replace(' ', '-')}`;
  log.info(`private_users: making the uid-shifted copy of ${source} (once per image version)`);
  try {
    // Once per image version, and it copies the whole image: zx's import does not count here.
    const $ = await zx();
    await $`cp -a --reflink=auto -- ${source} ${staging}`;
    // nspawn's own chown shifts every file, ACLs included, and keeps setuid bits.
    await $`systemd-nspawn --quiet --register=no --keep-unit --console=pipe --directory=${staging} --private-users=${base}:${rangeSize} --private-users-ownership=chown -- /bin/sh -c :`;
    writeFileSync(`${path}.json`, `${JSON.stringify({ source, base })}\n`);
    try {
      renameSync(staging, path);
    } catch (error) {
      if (!existsSync(path)) throw error;
    }
  } catch (error) {
    throw new SystemError(`cannot make the uid-shifted copy of ${source}: ${(error as Error).message.split('\n')[0]}`,
      'check free space in the state directory, or set private_users: false');
  } finally {
    if (existsSync(staging)) await removeTree(staging);
  }
  return { path, base };
}

/** Owns a job's upper directory as the machine's root, so the overlay's root is root's inside. */
export function chownToBase(path: string, base: number): void {
  chownSync(path, base, base);
}

/** Shifted copies whose source is gone (or is not, for a given source): removes them. */
export async function removeShiftedTrees(settings: Settings, isObsolete: (source: string) => boolean): Promise<string[]> {
  const dir = shiftedDir(settings);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const entry of entries.filter((name) => name.endsWith('.json'))) {
    const key = entry.slice(0, -'.json'.length);
    let source: string;
    try {
      ({ source } = JSON.parse(readFileSync(`${dir}/${entry}`, 'utf8')) as { source: string });
    } catch {
      continue;
    }
    if (!isObsolete(source)) continue;
    await removeTree(`${dir}/${key}`);
    rmSync(`${dir}/${entry}`, { force: true });
    removed.push(source);
  }
  // Staging copies of a prepare that died half-way.
  for (const entry of entries.filter((name) => name.startsWith('.staging-'))) {
    const [pid, startTime] = entry.split('-').slice(-2);
    if (!isOwnerRunning(`${pid} ${startTime}`)) await removeTree(`${dir}/${entry}`);
  }
  return removed;
}
