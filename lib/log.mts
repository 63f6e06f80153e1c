// One logger for every script. stdout is a protocol channel (config JSON,
// TOML, list rows), so everything human goes to stderr. gitlab-runner shows
// prepare's and run's stderr in the job log: keep the default level quiet.
import { writeSync } from 'node:fs';

export type LogLevel = 'error' | 'warn' | 'info' | 'verbose' | 'debug';

const ranks: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, verbose: 3, debug: 4 };
let threshold: number = ranks.info;

export function setLogLevel(level: LogLevel): void {
  threshold = ranks[level];
}

export function isLogging(level: LogLevel): boolean {
  return ranks[level] <= threshold;
}

/** A live progress line on the terminal (image/progress.mts): cleared for a message, drawn again after it. */
export interface LiveLine {
  clear(): void;
  redraw(): void;
}

let liveLine: LiveLine | undefined;

export function setLiveLine(line: LiveLine | undefined): void {
  liveLine = line;
}

function emit(level: LogLevel, prefix: string, message: string): void {
  if (ranks[level] > threshold) return;
  liveLine?.clear();
  writeAll(2, `${prefix}${message}\n`);
  liveLine?.redraw();
}

export const log = {
  error: (message: string) => emit('error', 'nspawn-runner: error: ', message),
  warn: (message: string) => emit('warn', 'nspawn-runner: warning: ', message),
  info: (message: string) => emit('info', 'nspawn-runner: ', message),
  verbose: (message: string) => emit('verbose', 'nspawn-runner: ', message),
  debug: (message: string) => emit('debug', 'nspawn-runner: debug: ', message),
};

/** Atomics.wait sleeps a synchronous caller without a busy loop; nothing ever wakes it early. */
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes all of data to a file descriptor. A non-blocking pipe that is full
 * (gitlab-runner reading a huge job log slowly) says EAGAIN, and Node offers a
 * synchronous caller no poll(2): sleep a little, longer while the reader
 * stays slow, rather than burn a core retrying. write is injectable for tests.
 */
export function writeAll(fd: number, data: string | Uint8Array, write: (fd: number, buffer: Uint8Array) => number = writeSync): void {
  let buffer = typeof data === 'string' ? Buffer.from(data) : data;
  let waitMs = 0;
  while (buffer.length > 0) {
    try {
      buffer = buffer.subarray(write(fd, buffer));
      waitMs = 0;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') return; // the reader went away: nothing left to tell it
      if (code !== 'EAGAIN') throw error;
      waitMs = Math.min(waitMs * 2 || 1, 20);
      Atomics.wait(pause, 0, 0, waitMs);
    }
  }
}
