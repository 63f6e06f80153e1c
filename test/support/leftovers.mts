// What a job may leave on the host: the checks look at the kernel's view
// (/proc/mounts, the process table), not just at directories.
import { readdirSync, readFileSync } from 'node:fs';

export interface Leftovers {
  mounts: string[];
  processes: string[];
  jobDirs: string[];
}

function cmdlineOf(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/** Mounts, nspawn processes and job directories that belong to state directory root. */
export function leftoversOf(root: string): Leftovers {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n')
    .filter((line) => line.includes(root) || line.includes('run-test'));
  const processes = readdirSync('/proc').filter((name) => /^\d+$/.test(name))
    .map((pid) => `${pid} ${cmdlineOf(pid)}`)
    .filter((line) => line.includes('systemd-nspawn') && line.includes(root));
  let jobDirs: string[] = [];
  try {
    jobDirs = readdirSync(`${root}/.jobs`);
  } catch {
    // no jobs directory at all: nothing left
  }
  return { mounts, processes, jobDirs };
}
