// Hosts without systemd as PID 1 (containers, CI machines): systemd-nspawn is
// started detached, unregistered, and found again through /proc.
import { closeSync, openSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { SystemError } from '../errors.mts';
import { missingBinaryError, shellJoin } from '../exec.mts';
import type { JobRecord } from '../job/record.mts';
import { isNspawnNoise } from '../nspawn.mts';
import { log } from '../log.mts';
import {
  argvOf, childrenOf, inOurPidNamespace, isLive, isRunning, nspawnProcesses, signal, sleep, startTimeOf, waitForExit,
} from '../proc.mts';
import type { FoundMachine, HostMode, StartRequest } from './host.mts';

export const directHost: HostMode = {
  name: 'direct',
  registers: false,
  start: startDetached,
  // A machine whose systemd-nspawn is gone counts as gone, even if its
  // processes linger: nothing supervises it any more, and cleanup kills them.
  async leaderOf(record) {
    const { leaderPid, leaderStartTime, nspawnPid, nspawnStartTime } = record;
    if (!nspawnPid || !isRunning(nspawnPid, nspawnStartTime)) return undefined;
    return leaderPid && isLive(leaderPid, leaderStartTime) ? leaderPid : undefined;
  },
  stop: stopDirect,
};

async function startDetached(request: StartRequest, record: JobRecord): Promise<JobRecord> {
  if (request.boot) throw new SystemError('booting machines needs a systemd host', 'set host: systemd, or do not ask for boot');
  const logPath = request.outputFile ?? `${request.jobDir}/nspawn.log`;
  const logFd = openSync(logPath, 'a');
  log.debug(`+ ${shellJoin(request.nspawnArgs)}`);
  // A spawn of our own, not exec.mts or zx: nspawn must outlive prepare.
  // Own session and no inherited pipes: gitlab-runner waits for EOF on
  // prepare's stdout and signals its process group, neither may reach nspawn.
  const child = spawn(request.nspawnArgs[0]!, request.nspawnArgs.slice(1), {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', SYSTEMD_LOG_LEVEL: 'warning', ...request.nspawnEnv },
  });
  closeSync(logFd);
  const spawnError = new Promise<never>((_, reject) => child.once('error', (error: NodeJS.ErrnoException) =>
    reject(error.code === 'ENOENT' ? missingBinaryError(request.nspawnArgs[0]!) : error)));
  spawnError.catch(() => undefined);
  child.unref();
  const nspawnPid = child.pid;
  if (nspawnPid === undefined) return spawnError;
  const started: JobRecord = { ...record, nspawnPid, nspawnStartTime: startTimeOf(nspawnPid) };
  request.onSpawned(started);
  const payload = request.nspawnArgs.slice(request.nspawnArgs.indexOf('--') + 1);
  const leader = await Promise.race([waitForPayload(nspawnPid, request.anyPayload ? undefined : payload, request.readyTimeoutMs), spawnError]);
  if (!leader) {
    await stopDirect(started);
    // The log goes with the job directory when prepare cleans up after
    // itself, so its last lines are the message and the hint names no file.
    throw new SystemError(`machine ${record.machine} did not start: ${lastLines(logPath)}`,
      'prepare --debug prints the systemd-nspawn command to run by hand');
  }
  return { ...started, leaderPid: leader, leaderStartTime: startTimeOf(leader) };
}

/**
 * The machine is up once its PID 2 runs the payload (the stage agent, after
 * re-executing itself with the same argv; any payload: once PID 2 exists): by then nspawn
 * has set up every namespace and mount. Returns the machine's PID 1 (nspawn's
 * stub init), or undefined on failure.
 */
async function waitForPayload(nspawnPid: number, payload: readonly string[] | undefined, timeoutMs: number): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; isRunning(nspawnPid); delay = Math.min(delay * 2, 10)) {
    for (const leader of childrenOf(nspawnPid)) {
      if (childrenOf(leader).some((pid) => (payload ? sameArgv(argvOf(pid), payload) : hasExeced(pid, nspawnPid)))) return leader;
    }
    if (Date.now() > deadline) return undefined;
    await sleep(delay);
  }
  return undefined;
}

/**
 * Killing the machine's PID 1 makes the kernel kill every process in its PID
 * namespace at once; nspawn then exits and its mount namespace (overlay
 * included) goes with it. We return only when nspawn is gone.
 */
async function stopDirect(record: Pick<JobRecord, 'machine' | 'leaderPid' | 'leaderStartTime' | 'nspawnPid' | 'nspawnStartTime'>): Promise<void> {
  const { leaderPid, leaderStartTime, nspawnPid, nspawnStartTime } = record;
  if (leaderPid && isRunning(leaderPid, leaderStartTime)) signal(leaderPid, 'SIGKILL');
  if (nspawnPid && isRunning(nspawnPid, nspawnStartTime)) {
    // A machine that never got a leader (failed start) is stopped through nspawn itself.
    for (const child of childrenOf(nspawnPid)) signal(child, 'SIGKILL');
    if (!(await waitForExit(nspawnPid, nspawnStartTime, 5000))) {
      signal(nspawnPid, 'SIGKILL');
      if (!(await waitForExit(nspawnPid, nspawnStartTime, 5000))) {
        throw new SystemError(`systemd-nspawn (pid ${nspawnPid}) of ${record.machine} does not exit`);
      }
    }
  }
}

/**
 * Every machine a systemd-nspawn process of our PID namespace runs, by its
 * command line. Those in other namespaces are not ours: the machine's PID 1
 * (a fork of nspawn, same command line), or a nested host's machines, whose
 * command lines name paths of that host.
 */
export function findNspawnMachines(): FoundMachine[] {
  return nspawnProcesses().filter(({ pid }) => inOurPidNamespace(pid)).map(({ pid, argv }) => {
    const nspawnStartTime = startTimeOf(pid);
    const machine = argv.find((arg) => arg.startsWith('--machine='))?.slice('--machine='.length) ?? `pid ${pid}`;
    return { machine, commandLine: argv.join(' '), stop: () => stopDirect({ machine, nspawnPid: pid, nspawnStartTime }) };
  });
}

function lastLines(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').trim().split('\n').filter((line) => line && !isNspawnNoise(line));
    return lines.length ? lines.slice(-3).join(' / ') : 'systemd-nspawn exited without a message';
  } catch {
    return 'no log';
  }
}

/**
 * Whether pid runs a program of its own. nspawn's forks keep its argv until
 * PID 2 execs the payload: the outer child's child (PID 1 to be) must not
 * pass for the payload; an exited payload (a zombie) has no argv.
 */
function hasExeced(pid: number, nspawnPid: number): boolean {
  const argv = argvOf(pid);
  return argv.length > 0 && !sameArgv(argv, argvOf(nspawnPid));
}

function sameArgv(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((arg, index) => arg === b[index]);
}
