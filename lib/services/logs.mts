// CI_DEBUG_SERVICES: each service's output in the job log, every line
// prefixed by the service's first host name, as the Docker executor does.
// Each service's log is a file in its directory; prepare and every stage
// pass on the complete lines that are new since the last call, and remember
// how far they got in <service>/streamed.
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { isNspawnNoise } from '../nspawn.mts';
import { serviceLogPath, type ServiceRecord } from './machines.mts';

const chunkLimit = 1 << 20;

function streamedOffset(service: ServiceRecord): number {
  try {
    const offset = Number(readFileSync(`${service.dir}/streamed`, 'utf8'));
    return Number.isInteger(offset) && offset >= 0 ? offset : 0;
  } catch {
    return 0;
  }
}

/** New complete lines of one service's log since the last call, prefixed. */
export function takeNewLines(service: ServiceRecord): string {
  let fd: number;
  try {
    fd = openSync(serviceLogPath(service.dir), 'r');
  } catch {
    return '';
  }
  try {
    const offset = streamedOffset(service);
    const buffer = Buffer.alloc(chunkLimit);
    const length = readSync(fd, buffer, 0, chunkLimit, offset);
    const end = buffer.subarray(0, length).lastIndexOf(0x0a) + 1;
    if (end === 0) return '';
    writeFileSync(`${service.dir}/streamed`, String(offset + end));
    const prefix = `[service:${service.hostNames[0] ?? service.machine}] `;
    return buffer.subarray(0, end).toString('utf8').replace(/\n$/, '').split('\n').filter((line) => !isNspawnNoise(line))
      .map((line) => `${prefix}${line}\n`).join('');
  } finally {
    closeSync(fd);
  }
}

/** Passes every service's new lines to write. */
export function streamServiceLogs(services: readonly ServiceRecord[], write: (text: string) => void): void {
  for (const service of services) {
    const text = takeNewLines(service);
    if (text) write(text);
  }
}
