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

/**
 * Mounts, nspawn processes and job directories of jobs in state directory
 * root: all of them, or only those of jobIds where other runs share root.
 */
export function leftoversOf(root: string, jobIds?: string[]): Leftovers {
  const ours = (text: string) => jobIds
    ? jobIds.some((id) => text.includes(`${root}/.jobs/${id}/`) || text.includes(`--machine=run-${id} `))
    : text.includes(root);
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter(ours);
  const processes = readdirSync('/proc').filter((name) => /^\d+$/.test(name))
    .map((pid) => `${pid} ${cmdlineOf(pid)} `)
    // pasta serves a job's pod (services), and names its namespace file in the job directory.
    .filter((line) => (line.includes('systemd-nspawn') || /^\d+ \S*pasta /.test(line)) && ours(line));
  let jobDirs: string[] = [];
  try {
    jobDirs = readdirSync(`${root}/.jobs`).filter((id) => !jobIds || jobIds.includes(id));
  } catch {
    // no jobs directory at all: nothing left
  }
  return { mounts, processes, jobDirs };
}
