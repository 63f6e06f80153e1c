// shell --job ID: a shell, or a command, as root in the machine of a kept
// failed job (job/keep-failed.mts): its files and its processes as the job left
// them. It is started the way every stage is, by the machine's stage agent
// (job/stage-agent.mts), so it has exactly the sandbox of the job's own
// processes. Entering from the host with nsenter would give a process
// outside nspawn's sandbox (issue 11), which is why this takes the long way.
//
// The agent runs a request with its output in a file and no input: right for
// a stage, not for a person. So the script handed to it first points its
// stdin, stdout and stderr at three FIFOs that the host made in the io
// directory, and the host pumps them to and from its own stdio (by polling
// non-blocking reads: Node's and Bun's streams differ on FIFOs). A person at
// a terminal gets the shell under script(1) inside the machine: a
// pseudo-terminal of the machine's own devpts, the host's terminal in raw
// mode. Images without script(1) get a shell without a terminal.
//
// The io directory is the job's to write, so every name in it is opened as
// job/stage.mts opens them: no symlink followed, the kind of file checked.
import { closeSync, constants as fs, lstatSync, openSync, readSync, unlinkSync } from 'node:fs';
import { SystemError } from '../errors.mts';
import { check, shellJoin } from '../exec.mts';
import { hostByName } from '../host/select.mts';
import { jobDir, requireJobRecord } from './record.mts';
import { log, writeAll } from '../log.mts';
import { isLive, signal, sleep } from '../proc.mts';
import { buildsDir, type Settings } from '../settings.mts';
import { findAgent, openChecked, readStatus, sendRequest, stageProcesses, stageToken, type Agent } from './stage.mts';
import { ioDirOf, machineIoDir } from './stage-agent.mts';

export interface JobShellRequest {
  jobId: string;
  /** A command to run instead of a shell. */
  command: string[];
  /** Our stdin is a terminal: a shell with a pseudo-terminal (when the image has script(1)), the terminal in raw mode. */
  terminal: boolean;
  term?: string;
  rows?: number;
  columns?: number;
}

/** The script the agent runs: stdio from the FIFOs, then the shell or the command. */
export function buildJobShellScript(token: string, request: Omit<JobShellRequest, 'jobId'>, startDir: string, pty: boolean): string {
  const fifo = (kind: string) => `${machineIoDir}/${token}.${kind}`;
  const lines = [
    `exec <${fifo('in')} >${fifo('out')} 2>${fifo('err')}`,
    `cd ${shellJoin([startDir])} 2>/dev/null || cd /root 2>/dev/null || cd /`,
  ];
  if (request.term && /^[A-Za-z0-9._+-]{1,64}$/.test(request.term)) lines.push(`export TERM=${request.term}`);
  if (request.command.length) {
    lines.push(`exec ${shellJoin(request.command)}`);
  } else if (request.terminal && pty) {
    const size = request.rows && request.columns ? `stty rows ${Math.trunc(request.rows)} cols ${Math.trunc(request.columns)} 2>/dev/null; ` : '';
    lines.push(`exec script -qefc ${shellJoin([`${size}command -v bash >/dev/null && exec bash -l; exec sh -l`])} /dev/null`);
  } else if (request.terminal) {
    lines.push(
      'echo "nspawn-runner: this image has no script(1): a shell without a terminal (no job control, no full-screen programs)" >&2',
      'exec sh -i',
    );
  } else {
    lines.push('command -v bash >/dev/null && exec bash', 'exec sh');
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Whether the machine has script(1), looked up through its PID 1's root
 * (proc(5), /proc/PID/root): lstat only, nothing in the machine is followed.
 */
function machineHasScript(leader: number): boolean {
  return ['usr/bin/script', 'bin/script'].some((path) => {
    try {
      lstatSync(`/proc/${leader}/root/${path}`);
      return true;
    } catch {
      return false;
    }
  });
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already, or the job's business
  }
}

/** Opens the FIFO the shell reads, once it does; undefined when the session ended first. */
async function openInput(path: string, ended: () => boolean): Promise<number | undefined> {
  const started = Date.now();
  let told = false;
  for (let delay = 1; ; delay = Math.min(delay * 2, 100)) {
    try {
      return openChecked(path, fs.O_WRONLY, (stats) => stats.isFIFO());
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENXIO') throw error;
    }
    if (ended()) return undefined;
    if (!told && Date.now() - started > 2000) {
      log.info('waiting for the machine\'s stage agent (is another shell --job open?)');
      told = true;
    }
    await sleep(delay);
  }
}

/** Runs the session; resolves to the exit status of the shell or the command. */
export async function enterJob(settings: Settings, request: JobShellRequest): Promise<number> {
  const record = requireJobRecord(settings, request.jobId);
  if (!record.keptUntil) {
    throw new SystemError(`job ${request.jobId} is not a kept failed job`, 'shell --job enters the machines keep_failed keeps; "nspawn-runner status" lists them');
  }
  const host = await hostByName(record.host);
  const leader = await host.leaderOf(record);
  const agent: Agent | undefined = leader ? findAgent(leader) : undefined;
  if (!agent) {
    throw new SystemError(`the machine of job ${request.jobId} ${leader ? 'has no stage agent any more (the job killed it?)' : 'is not running'}`,
      `"nspawn-runner cleanup --id ${request.jobId}" removes what is left`);
  }
  const ioDir = ioDirOf(jobDir(settings, request.jobId));
  const token = stageToken('shell');
  const paths = { in: `${ioDir}/${token}.in`, out: `${ioDir}/${token}.out`, err: `${ioDir}/${token}.err`, script: `${ioDir}/${token}.sh` };
  const statusPath = `${ioDir}/${token}.status`;
  const pty = request.terminal && machineHasScript(leader!);
  const restore: Array<() => void> = [];
  try {
    await check(['mkfifo', '-m', '600', '--', paths.in, paths.out, paths.err]);
    const scriptFd = openSync(paths.script, fs.O_WRONLY | fs.O_CREAT | fs.O_EXCL | fs.O_NOFOLLOW, 0o600);
    try {
      writeAll(scriptFd, buildJobShellScript(token, request, buildsDir(settings), pty));
    } finally {
      closeSync(scriptFd);
    }
    // Opened before the shell opens them for writing, so its opens never wait
    // for us; openChecked adds O_NONBLOCK, so reading them never blocks.
    const outFd = openChecked(paths.out, fs.O_RDONLY, (stats) => stats.isFIFO());
    const errFd = openChecked(paths.err, fs.O_RDONLY, (stats) => stats.isFIFO());
    if (!sendRequest(ioDir, `${token} /bin/sh\n`)) throw new SystemError(`the stage agent of job ${request.jobId} does not read its requests`);
    log.info(`job ${request.jobId}: ${request.command.length ? 'running the command' : 'a shell'} in machine ${record.machine} ` +
      `(kept until ${record.keptUntil}); "nspawn-runner cleanup --id ${request.jobId}" removes the machine`);
    const agentAlive = () => isLive(agent.pid, agent.startTime);
    // Interrupted while the session waits for the agent: give up, and the
    // finally below removes the script, so the queued request fails at once.
    let interrupted: NodeJS.Signals | undefined;
    let inFd: number | undefined;
    const forward = (name: NodeJS.Signals) => {
      if (inFd === undefined) interrupted = name;
      else for (const pid of stageProcesses(agent, token)) signal(pid, name);
    };
    for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(name, forward);
      restore.push(() => process.off(name, forward));
    }
    const finished = () => readStatus(statusPath) !== undefined || !agentAlive();
    inFd = await openInput(paths.in, () => finished() || interrupted !== undefined);
    if (interrupted) throw new SystemError(`interrupted by ${interrupted} before the session started`);
    if (inFd !== undefined) {
      const input = inFd;
      let open = true;
      const close = () => {
        if (open) closeSync(input);
        open = false;
      };
      // Raw: keys go to the machine's pseudo-terminal, which echoes and edits lines itself.
      if (pty && process.stdin.isTTY) {
        process.stdin.setRawMode(true);
        restore.push(() => process.stdin.setRawMode(false));
      }
      // writeAll waits out a full FIFO and stops at EPIPE, once the shell is gone.
      process.stdin.on('data', (chunk: Buffer) => open && writeAll(input, chunk));
      process.stdin.on('end', close);
      restore.push(() => {
        process.stdin.pause();
        close();
      });
    }
    // The FIFOs are read by polling, on Node and Bun alike: a non-blocking
    // read says EAGAIN while a FIFO is empty. Its end-of-file is not waited
    // for: the session is over when the shell has exited (its status is
    // written), and a process it left in the background may keep the FIFOs
    // open, as with a stage.
    const outputs = [[outFd, 1], [errFd, 2]] as const;
    restore.push(() => outputs.forEach(([fd]) => closeSync(fd)));
    const chunk = Buffer.allocUnsafe(64 * 1024);
    const pump = (): boolean => {
      let moved = false;
      for (const [fd, target] of outputs) {
        for (;;) {
          let count: number;
          try {
            count = readSync(fd, chunk, 0, chunk.length, null);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'EAGAIN') break;
            throw error;
          }
          if (count <= 0) break;
          writeAll(target, chunk.subarray(0, count));
          moved = true;
        }
      }
      return moved;
    };
    for (let delay = 5; !finished(); delay = pump() ? 5 : Math.min(delay * 2, 50)) await sleep(delay);
    pump();
    const code = readStatus(statusPath);
    if (code === undefined) throw new SystemError(`the stage agent of job ${request.jobId} ended during the session`);
    return code;
  } finally {
    for (const undo of restore.reverse()) undo();
    for (const path of [...Object.values(paths), statusPath]) removeQuietly(path);
  }
}

/** Refuses a non-root caller under sudo: only root may enter a job's machine. */
export function checkJobShellCaller(env: NodeJS.ProcessEnv): void {
  if (env.SUDO_USER && env.SUDO_USER !== 'root') {
    throw new SystemError('shell --job is for root only', 'a job\'s machine holds its secrets: ask an admin of the runner host');
  }
}

