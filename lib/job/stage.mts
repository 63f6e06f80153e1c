// Runs one stage's script inside a running machine, through the machine's
// stage agent (job/stage-agent.mts), so the script has the machine's sandbox.
//
// gitlab-runner reads run_exec's stdout until end-of-file, so a background
// process (`server &`) that inherited a pipe would hold the stage open for as
// long as it lives. The agent therefore points the script's output at a file
// in the io directory, opened O_APPEND, and we copy that file to our stdout
// until the agent reports the script's exit status. The background process
// keeps writing into the file (never into a closed pipe, so no SIGPIPE) and
// lives on into the next stage.
//
// The io directory is the job's to write: root in the machine can put a
// symlink or a FIFO under any name. So every name is opened with O_NOFOLLOW
// and O_NONBLOCK and checked for its type before use, and new files are made
// with O_EXCL.
import { randomHex } from '../crypto.mts';
import {
  closeSync, constants as fs, fstatSync, ftruncateSync, openSync, readSync, readFileSync, unlinkSync, watch, writeSync,
  type FSWatcher,
} from 'node:fs';
import { SystemError } from '../errors.mts';
import { log, writeAll } from '../log.mts';
import { argvOf, childrenOf, isLive, isSessionLeader, sessionMembers, signal, sleep, startTimeOf } from '../proc.mts';
import { isAgentArgv } from './stage-agent.mts';

export interface Agent {
  pid: number;
  startTime?: string;
}

/** The machine's stage agent: a child of its PID 1 (nspawn's stub init, or the machine's systemd). */
export function findAgent(leaderPid: number): Agent | undefined {
  const pid = childrenOf(leaderPid).find((child) => isAgentArgv(argvOf(child)));
  return pid === undefined ? undefined : { pid, startTime: startTimeOf(pid) };
}

/** A name in the io directory that is safe to pass to the agent and to use as a file name. */
export function stageToken(stage: string, random = randomHex(4)): string {
  return `${stage.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)}-${random}`;
}

/** Shells are named by path or by name; the agent refuses anything else too. */
export function checkShell(shell: string): string {
  if (!/^[A-Za-z0-9_./-]+$/.test(shell) || shell.startsWith('-')) throw new SystemError(`invalid shell ${JSON.stringify(shell)}`);
  return shell;
}

/** Opens a name in the io directory without following a symlink, and checks what it opened. */
export function openChecked(path: string, flags: number, isRightKind: (stats: ReturnType<typeof fstatSync>) => boolean): number {
  const fd = openSync(path, flags | fs.O_NOFOLLOW | fs.O_NONBLOCK);
  const stats = fstatSync(fd);
  if (isRightKind(stats)) return fd;
  closeSync(fd);
  throw new SystemError(`${path} was replaced from inside the machine`, 'the job tampered with /run/nspawn-runner; retry the job');
}

/**
 * The agent's FIFO opened for writing, or undefined while no agent reads it
 * (starting, or rebooting): O_NONBLOCK makes that open fail with ENXIO
 * instead of waiting (fifo(7)).
 */
function openRequests(ioDir: string): number | undefined {
  try {
    return openChecked(`${ioDir}/requests`, fs.O_WRONLY, (stats) => stats.isFIFO());
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENXIO' || code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Sends a request, or returns false while no agent reads the FIFO. */
export function sendRequest(ioDir: string, line: string): boolean {
  const fd = openRequests(ioDir);
  if (fd === undefined) return false;
  try {
    // One write of less than PIPE_BUF bytes: atomic, never interleaved.
    writeSync(fd, line);
    return true;
  } finally {
    closeSync(fd);
  }
}

/** Waits until the agent reads its FIFO; false when it does not within timeoutMs or the agent died. */
export async function waitForAgent(ioDir: string, isAlive: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; isAlive(); delay = Math.min(delay * 2, 50)) {
    const fd = openRequests(ioDir);
    if (fd !== undefined) {
      closeSync(fd);
      return true;
    }
    if (Date.now() > deadline) return false;
    await sleep(delay);
  }
  return false;
}

function writeScript(path: string, scriptFd: number): void {
  const fd = openSync(path, fs.O_WRONLY | fs.O_CREAT | fs.O_EXCL | fs.O_NOFOLLOW, 0o600);
  try {
    writeAll(fd, readFileSync(scriptFd));
  } finally {
    closeSync(fd);
  }
}

/** The stage's exit status, once the agent has written it. */
export function readStatus(path: string): number | undefined {
  let fd: number;
  try {
    fd = openChecked(path, fs.O_RDONLY, (stats) => stats.isFile());
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const text = readFileSync(fd, 'utf8').trim();
    // Created, not yet written: the agent's echo is one write.
    if (text === '') return undefined;
    const code = Number(text);
    if (!/^\d{1,3}$/.test(text) || code > 255) throw new SystemError(`the stage agent reported ${JSON.stringify(text.slice(0, 20))}`);
    return code;
  } finally {
    closeSync(fd);
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already, or the job's business
  }
}

/** How long a cancelled stage's processes get between SIGTERM and SIGKILL. */
const killGraceMs = 10_000;

/** The stage's processes: its session, or its descendants when it could not make one. */
export function stageProcesses(agent: Agent, token: string): number[] {
  const stage = childrenOf(agent.pid).find((pid) => argvOf(pid).some((arg) => arg.endsWith(`/${token}.sh`)));
  if (stage === undefined) return [];
  if (isSessionLeader(stage)) return sessionMembers(stage);
  const found = [stage];
  for (let index = 0; index < found.length; index++) found.push(...childrenOf(found[index]!));
  return found;
}

export interface StageRequest {
  ioDir: string;
  agent: Agent;
  /** The script, as an open descriptor: its host path need not resolve inside the machine. */
  scriptFd: number;
  shell: string;
  stage: string;
  /** Where the stage's output goes; our stdout by default (run_exec's contract). */
  output?: (chunk: Uint8Array) => void;
  /** Stops the stage as a cancel does (exec's job timeout). */
  cancel?: AbortSignal;
}

/** The script's exit code (128 + signal number when a signal ended it), or 'agent-gone'. */
export type StageOutcome = { code: number } | 'agent-gone';

export async function runScriptThroughAgent(request: StageRequest): Promise<StageOutcome> {
  const { ioDir, agent } = request;
  const token = stageToken(request.stage);
  const scriptPath = `${ioDir}/${token}.sh`;
  const statusPath = `${ioDir}/${token}.status`;
  const output = openChecked(`${ioDir}/output`, fs.O_RDWR, (stats) => stats.isFile() && stats.nlink === 1);
  ftruncateSync(output);
  writeScript(scriptPath, request.scriptFd);
  const agentAlive = (): boolean => isLive(agent.pid, agent.startTime);
  const emit = request.output ?? ((data: Uint8Array) => writeAll(1, data));

  let position = 0;
  const chunk = Buffer.allocUnsafe(64 * 1024);
  const copy = (limit = Infinity): void => {
    while (position < limit) {
      const count = readSync(output, chunk, 0, Math.min(chunk.length, limit - position), position);
      if (count <= 0) return;
      // A copy: the buffer is reused for the next read.
      emit(request.output ? Buffer.from(chunk.subarray(0, count)) : chunk.subarray(0, count));
      position += count;
    }
  };

  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  const forward = (): void => {
    log.info('stage cancelled: stopping its processes');
    // SIGTERM first, so scripts can clean up; the agent reports how they ended.
    for (const pid of stageProcesses(agent, token)) signal(pid, 'SIGTERM');
    setTimeout(() => {
      for (const pid of stageProcesses(agent, token)) signal(pid, 'SIGKILL');
    }, killGraceMs).unref();
  };
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
  for (const name of signals) process.on(name, forward);
  request.cancel?.addEventListener('abort', forward);
  try {
    log.debug(`+ stage agent ${agent.pid}: ${token} ${request.shell}`);
    if (!sendRequest(ioDir, `${token} ${checkShell(request.shell)}\n`)) return 'agent-gone';
    if (request.cancel?.aborted) forward();
    return await new Promise<StageOutcome>((resolve, reject) => {
      const check = (): void => {
        try {
          copy();
          const code = readStatus(statusPath);
          if (code !== undefined) {
            // What the shell wrote before it exited, not what its background
            // processes keep writing after.
            copy(fstatSync(output).size);
            resolve({ code });
          } else if (!agentAlive()) {
            copy(fstatSync(output).size);
            resolve('agent-gone');
          }
        } catch (error) {
          reject(error);
        }
      };
      try {
        watcher = watch(ioDir, check);
      } catch {
        // without inotify the timer below still copies
      }
      timer = setInterval(check, 250);
      check();
    });
  } finally {
    watcher?.close();
    clearInterval(timer);
    closeSync(output);
    for (const name of signals) process.off(name, forward);
    request.cancel?.removeEventListener('abort', forward);
    removeQuietly(scriptPath);
    removeQuietly(statusPath);
  }
}
