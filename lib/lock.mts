// One writer per image: create, maintenance, login, remove and the removal of
// old versions each hold the image's lock. Jobs never take it (prepare only
// reads a symlink), so a long maintenance never holds up a job.
//
// The lock is a directory renamed into place with its owner file already in
// it, so it never exists without saying who holds it. A holder that died (its
// PID gone, or reused with another start time) leaves a stale lock that the
// next taker removes.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomHex } from './crypto.mts';
import { SystemError } from './errors.mts';
import { isRunning, startTimeOf } from './proc.mts';

export interface LockOwner {
  pid: number;
  startTime: string | undefined;
  /** What the holder does, for the "busy" message: "chroot-maintenance", ... */
  purpose: string;
  since: string;
}

export interface Lock {
  readonly path: string;
  release(): void;
}

function readOwner(lockPath: string): LockOwner | undefined {
  try {
    return JSON.parse(readFileSync(`${lockPath}/owner`, 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

function isAlive(owner: LockOwner | undefined): boolean {
  return owner !== undefined && isRunning(owner.pid, owner.startTime);
}

function sameOwner(a: LockOwner | undefined, b: LockOwner | undefined): boolean {
  return a?.pid === b?.pid && a?.startTime === b?.startTime && a?.since === b?.since;
}

/** Takes the lock at lockPath, or returns who holds it. */
export function tryLock(lockPath: string, purpose: string): Lock | LockOwner {
  const parent = lockPath.slice(0, lockPath.lastIndexOf('/'));
  // Traversable by all, as the state directory is: mmdebstrap downloads as
  // the _apt user into a tree below it, and images hold nothing secret.
  mkdirSync(parent, { recursive: true, mode: 0o755 });
  const me: LockOwner = { pid: process.pid, startTime: startTimeOf(process.pid), purpose, since: new Date().toISOString() };
  const scratch = `${lockPath}-${process.pid}-${randomHex(4)}`;
  mkdirSync(scratch, { mode: 0o700 });
  writeFileSync(`${scratch}/owner`, `${JSON.stringify(me)}\n`);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        // rename(2) onto an existing non-empty directory fails: that is the test-and-set.
        renameSync(scratch, lockPath);
        return { path: lockPath, release: () => releaseLock(lockPath, me) };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      }
      const owner = readOwner(lockPath);
      if (isAlive(owner)) return owner!;
      removeStaleLock(lockPath, owner);
    }
    throw new SystemError(`cannot take the lock ${lockPath}`, 'another process keeps taking it; retry');
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Takes the lock or throws a SystemError naming the holder. */
export function lockOrFail(lockPath: string, purpose: string, what: string): Lock {
  const result = tryLock(lockPath, purpose);
  if ('release' in result) return result;
  throw new SystemError(`${what} is busy: ${result.purpose} (pid ${result.pid}) has been working on it since ${result.since}`,
    'retry when it has finished');
}

/**
 * Moves the stale lock aside, then checks it is the one judged stale: if a
 * live taker replaced it in between, its lock is put back.
 */
function removeStaleLock(lockPath: string, stale: LockOwner | undefined): void {
  const aside = `${lockPath}-stale-${process.pid}-${randomHex(4)}`;
  try {
    renameSync(lockPath, aside);
  } catch {
    return; // someone else removed it first
  }
  if (sameOwner(readOwner(aside), stale)) {
    rmSync(aside, { recursive: true, force: true });
    return;
  }
  try {
    renameSync(aside, lockPath);
  } catch {
    rmSync(aside, { recursive: true, force: true });
  }
}

function releaseLock(lockPath: string, me: LockOwner): void {
  if (sameOwner(readOwner(lockPath), me)) rmSync(lockPath, { recursive: true, force: true });
}
