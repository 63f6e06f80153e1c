// Runs one stage's script inside a running machine.
//
// gitlab-runner reads run_exec's stdout until end-of-file, so a background
// process (`server &`) that inherits the stage's stdout would hold the stage
// open for as long as it lives. The script therefore writes into a file in
// the job directory, opened O_APPEND, and we copy that file to our stdout
// while the script's shell runs. When the shell exits we stop copying and
// exit; the background process keeps writing into the file (never into a
// closed pipe, so no SIGPIPE) and lives on into the next stage.
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';
import { constants } from 'node:os';
import { missingBinaryError, shellJoin } from './exec.mts';
import { log, writeAll } from './log.mts';
import { setarchPrefix } from './personality.mts';
import { isStopped, processGroupMembers, signal } from './proc.mts';

/** The environment inside the machine: the script's own, never the host's. */
export const machineEnv: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  USER: 'root',
  LOGNAME: 'root',
  LANG: 'C.UTF-8',
  container: 'systemd-nspawn',
};

/**
 * Enters every namespace of the machine's PID 1, with its root and working
 * directory. A personality is not a namespace: nsenter keeps the host's, so
 * stages of an i386 machine get theirs from setarch, as nspawn gave PID 1.
 */
export function buildEnterArgs(leaderPid: number, command: readonly string[], personality?: string): string[] {
  return [...setarchPrefix(personality), 'nsenter', `--target=${leaderPid}`, '--all', '--root', '--wd', '--', ...command];
}

/**
 * The script arrives as an open descriptor (fd 3), never as a host path: the
 * host's copy need not resolve inside the machine, and nothing planted in the
 * machine can redirect a host-side write. A small sh copies it into the
 * machine's /run first, because reopening /dev/fd/3 is a permission check
 * that a user-namespaced root fails on the host's file; reading the open
 * descriptor is not. The shell then runs a real file, as gitlab-runner expects.
 */
export function buildScriptCommand(shell: string): string[] {
  return ['/bin/sh', '-c', 'mkdir -p /run/nspawn-runner && cat <&3 >"/run/nspawn-runner/script.$$" && exec "$0" "/run/nspawn-runner/script.$$" 3<&-', shell];
}

export interface StageResult {
  /** The script's exit code; 128 + signal number when a signal ended it. */
  code: number;
}

/** How long a cancelled stage's processes get between SIGTERM and SIGKILL. */
const killGraceMs = 10_000;

export async function runScriptInMachine(
  leaderPid: number,
  scriptFd: number,
  outputPath: string,
  shell: string,
  personality?: string,
): Promise<StageResult> {
  const argv = buildEnterArgs(leaderPid, buildScriptCommand(shell), personality);
  log.debug(`+ ${shellJoin(argv)} 3<script >>${outputPath}`);
  const outputFd = openSync(outputPath, 'a', 0o600);
  ftruncateSync(outputFd);
  const reader = openSync(outputPath, 'r');
  // A session of its own, so a cancel reaches the whole stage and nothing else.
  const child = spawn(argv[0]!, argv.slice(1), {
    detached: true,
    stdio: ['ignore', outputFd, outputFd, scriptFd],
    env: machineEnv,
  });
  closeSync(outputFd);

  let position = 0;
  const chunk = Buffer.allocUnsafe(64 * 1024);
  const copy = (limit = Infinity): void => {
    while (position < limit) {
      const count = readSync(reader, chunk, 0, Math.min(chunk.length, limit - position), position);
      if (count <= 0) return;
      writeAll(1, chunk.subarray(0, count));
      position += count;
    }
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(outputPath, () => copy());
  } catch {
    // without inotify the timer below still copies
  }
  // A booted machine's systemd-shutdown (a reboot in the job, `machinectl
  // poweroff`) stops every process of the machine before it kills them:
  // SIGSTOP, SIGTERM, SIGCONT. nsenter stops itself when its child stops, and
  // the SIGCONT cannot reach it outside the machine, so it would never reap
  // the killed shell: the stage, and the machine's shutdown, would hang.
  const timer = setInterval(() => {
    copy();
    if (child.pid && isStopped(child.pid)) signal(child.pid, 'SIGCONT');
  }, 250);

  const forward = (): void => {
    log.info('stage cancelled: stopping its processes');
    // nsenter (the group's leader) does not pass signals on and dies of
    // SIGTERM at once: the stage would end while a script that handles or
    // ignores SIGTERM runs on beside after_script. So the script's processes
    // get SIGTERM and nsenter stays to report how they ended; what is left
    // after the grace period is killed, nsenter with it.
    for (const pid of processGroupMembers(child.pid!)) if (pid !== child.pid) signal(pid, 'SIGTERM');
    setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, killGraceMs).unref();
  };
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
  for (const name of signals) process.on(name, forward);

  try {
    return await new Promise<StageResult>((resolve, reject) => {
      child.once('error', (error: NodeJS.ErrnoException) =>
        reject(error.code === 'ENOENT' ? missingBinaryError(argv[0]!) : error));
      child.once('exit', (code, signal) => {
        // Copy what the shell wrote before it exited, not what its
        // background processes keep writing after.
        copy(fstatSync(reader).size);
        resolve({ code: code ?? 128 + (signal ? constants.signals[signal] : 0) });
      });
    });
  } finally {
    watcher?.close();
    clearInterval(timer);
    closeSync(reader);
    for (const name of signals) process.off(name, forward);
  }
}
