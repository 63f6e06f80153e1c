// A cgroup of its own for each systemd test host. nspawn --keep-unit puts a
// machine in the caller's cgroup and makes that the machine's cgroup
// namespace root; without a cgroup each, every test host (and any other
// unregistered machine here) would share one tree, and two test hosts'
// systemds would manage the same machine.slice.
import { readdirSync, readFileSync, rmdirSync, mkdirSync, statfsSync } from 'node:fs';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const CGROUP_SUPER_MAGIC = 0x27e0eb;

function isCgroupMount(path: string, magic: number): boolean {
  try {
    return statfsSync(path).type === magic;
  } catch {
    return false;
  }
}

/** The hierarchies a machine's systemd uses: unified (v2 or hybrid), and name=systemd on hybrid hosts. */
function hierarchies(): Array<{ mount: string; key: string }> {
  if (isCgroupMount('/sys/fs/cgroup', CGROUP2_SUPER_MAGIC)) return [{ mount: '/sys/fs/cgroup', key: '0::' }];
  const found: Array<{ mount: string; key: string }> = [];
  if (isCgroupMount('/sys/fs/cgroup/unified', CGROUP2_SUPER_MAGIC)) found.push({ mount: '/sys/fs/cgroup/unified', key: '0::' });
  if (isCgroupMount('/sys/fs/cgroup/systemd', CGROUP_SUPER_MAGIC)) found.push({ mount: '/sys/fs/cgroup/systemd', key: ':name=systemd:' });
  return found;
}

/** Creates NAME below this process's cgroup in each hierarchy; returns the new directories. */
export function createOwnCgroups(name: string): string[] {
  const own = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  return hierarchies().map(({ mount, key }) => {
    const line = own.find((entry) => entry.includes(key) && (key !== '0::' || entry.startsWith('0::')));
    const path = line ? line.slice(line.indexOf(key) + key.length) : '/';
    const dir = `${mount}${path === '/' ? '' : path}/${name}`;
    mkdirSync(dir, { recursive: true });
    return dir;
  });
}

/** Removes cgroup directories, deepest first; they must hold no processes any more. */
export function removeCgroups(dirs: readonly string[]): void {
  const remove = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
    } catch {
      return;
    }
    for (const child of entries) remove(`${dir}/${child}`);
    try {
      rmdirSync(dir);
    } catch {
      // still busy: the next run's dispose cannot reuse the name anyway (it holds the pid)
    }
  };
  for (const dir of dirs) remove(dir);
}
