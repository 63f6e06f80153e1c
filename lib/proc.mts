// Process facts from /proc. PIDs are reused, so a stored PID is always paired
// with its start time (field 22 of /proc/PID/stat) before it is signalled.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

interface Stat {
  state: string;
  parent: number;
  processGroup: number;
  session: number;
  /** PF_EXITING: the process is being torn down (a killed PID 1 waits for its namespace to die). */
  exiting: boolean;
  startTime: string;
}

const PF_EXITING = 0x4;

/** Fields of /proc/PID/stat; the command name may hold spaces and parentheses. */
function statOf(pid: number | string): Stat | undefined {
  const stat = readProc(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    state: fields[0]!,
    parent: Number(fields[1]),
    processGroup: Number(fields[2]),
    session: Number(fields[3]),
    exiting: (Number(fields[6]) & PF_EXITING) !== 0,
    startTime: fields[19]!,
  };
}

/** Programs that only wrap the real caller: a shell of a -c string, sudo, env, timeout, ... */
const wrappers = new Set(['sh', 'bash', 'dash', 'zsh', 'sudo', 'env', 'timeout', 'nice', 'ionice', 'setsid', 'runuser', 'su', 'nspawn-runner']);

/**
 * The process a job belongs to: the nearest ancestor that is not a wrapper.
 * gitlab-runner runs prepare_exec itself, but an admin may wrap it in a
 * shell script, which exits long before the job ends. 0 when that ancestor
 * lives in another PID namespace (getppid(2) says 0): it cannot be known.
 */
export function owningAncestorOf(pid: number): number {
  let current = statOf(pid)?.parent ?? 1;
  while (current > 1 && wrappers.has(commandNameOf(current) ?? '')) current = statOf(current)?.parent ?? 1;
  return current;
}

/** PIDs of the live processes in session sid, as the host numbers them (whatever PID namespace they run in). */
export function sessionMembers(sid: number): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).filter((pid) => {
    const stat = statOf(pid);
    return stat?.session === sid && stat.state !== 'Z';
  }).map(Number);
}

/** The session pid leads, if it leads one. */
export function isSessionLeader(pid: number): boolean {
  return statOf(pid)?.session === pid;
}

/** Whether pid runs in our PID namespace, not in a container's (a nested host's machines are its own). */
export function inOurPidNamespace(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`) === readlinkSync('/proc/self/ns/pid');
  } catch {
    return false;
  }
}

/**
 * pid's number in each PID namespace it is in, from ours (that of /proc)
 * inwards: NSpid in /proc/PID/status (proc(5)).
 */
export function namespacePidsOf(pid: number | 'self'): number[] {
  const line = readProc(`/proc/${pid}/status`)?.split('\n').find((entry) => entry.startsWith('NSpid:'));
  return line ? line.slice('NSpid:'.length).trim().split(/\s+/).map(Number) : [];
}

export function startTimeOf(pid: number): string | undefined {
  return statOf(pid)?.startTime;
}

/**
 * Like isRunning, but a process being torn down counts as gone too: a
 * machine whose PID 1 was killed shows it for a while, waiting for the rest
 * of its namespace to die, and must not be taken for a live machine.
 */
export function isLive(pid: number, startTime?: string): boolean {
  return isRunning(pid, startTime) && !statOf(pid)?.exiting;
}

/** True while pid runs (zombies count as gone) and, if given, still has that start time. */
export function isRunning(pid: number, startTime?: string): boolean {
  const stat = statOf(pid);
  if (!stat || stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === undefined || stat.startTime === startTime;
}

/**
 * "PID STARTTIME": who is making something (a staging directory), so a later
 * gc can tell whether that process still runs even when its PID is reused.
 */
export function ownerMark(pid: number = process.pid): string {
  return `${pid} ${startTimeOf(pid) ?? ''}`;
}

/** Whether the process an ownerMark names still runs; an empty mark names nobody. */
export function isOwnerRunning(mark: string): boolean {
  const [pid, startTime] = mark.trim().split(' ');
  return Boolean(pid) && isRunning(Number(pid), startTime || undefined);
}

/** True while pid is stopped (SIGSTOP, SIGTSTP, ...). */
export function isStopped(pid: number): boolean {
  return statOf(pid)?.state === 'T';
}

export function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tasks.flatMap((tid) => (readProc(`/proc/${pid}/task/${tid}/children`) ?? '')
    .split(' ').filter(Boolean).map(Number));
}

export function argvOf(pid: number): string[] {
  return (readProc(`/proc/${pid}/cmdline`) ?? '').split('\0').slice(0, -1);
}

export function commandNameOf(pid: number): string | undefined {
  return readProc(`/proc/${pid}/comm`)?.trimEnd();
}

/** Polls until pid is gone; returns false on timeout. */
export async function waitForExit(pid: number, startTime: string | undefined, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; isRunning(pid, startTime); delay = Math.min(delay * 2, 20)) {
    if (Date.now() > deadline) return false;
    await sleep(delay);
  }
  return true;
}

export function signal(pid: number, name: NodeJS.Signals): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false;
  }
}

/** Running processes of program (argv[0] ends with it), with their argv. */
export function processesOf(program: string): Array<{ pid: number; argv: string[] }> {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).flatMap((pid) => {
    const argv = (readProc(`/proc/${pid}/cmdline`) ?? '').split('\0');
    return argv[0]!.endsWith(program) ? [{ pid: Number(pid), argv }] : [];
  });
}

/** Running systemd-nspawn processes with their argv: machines, maintenance containers, shells. */
export function nspawnProcesses(): Array<{ pid: number; argv: string[] }> {
  return processesOf('systemd-nspawn');
}
