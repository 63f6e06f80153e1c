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

function emit(level: LogLevel, prefix: string, message: string): void {
  if (ranks[level] > threshold) return;
  writeAll(2, `${prefix}${message}\n`);
}

export const log = {
  error: (message: string) => emit('error', 'nspawn-runner: error: ', message),
  warn: (message: string) => emit('warn', 'nspawn-runner: warning: ', message),
  info: (message: string) => emit('info', 'nspawn-runner: ', message),
  verbose: (message: string) => emit('verbose', 'nspawn-runner: ', message),
  debug: (message: string) => emit('debug', 'nspawn-runner: debug: ', message),
};

/** Writes all of data to a file descriptor, retrying on a non-blocking pipe that is full. */
export function writeAll(fd: number, data: string | Uint8Array): void {
  let buffer = typeof data === 'string' ? Buffer.from(data) : data;
  while (buffer.length > 0) {
    try {
      const written = writeSync(fd, buffer);
      buffer = buffer.subarray(written);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      if (code === 'EPIPE') return; // the reader went away: nothing left to tell it
      throw error;
    }
  }
}
