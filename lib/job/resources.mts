// What a job's machine used: peak memory, CPU time and OOM kills, read from
// the machine's own cgroup where it has one (the unit of a systemd host, on
// the unified hierarchy: cgroup-v2.rst, memory.peak, memory.events, cpu.stat).
// A direct host starts machines in the caller's cgroup, so there the CPU time
// is summed from /proc over the machine's PID namespace instead: every live
// process's own time plus the time of the children it has reaped (proc(5),
// utime, stime, cutime, cstime), which covers every process that ever ran in
// the machine, since the machine's PID 1 reaps the orphans. Peak memory and
// OOM kills have no such source: the line says so.
import { readFileSync, readdirSync, readlinkSync, statfsSync } from 'node:fs';
import type { JobRecord } from './record.mts';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const CGROUP_SUPER_MAGIC = 0x27e0eb;
/** USER_HZ: the unit of /proc/PID/stat times; 100 on every Linux architecture we run on. */
const clockTicks = 100;

export interface JobResources {
  peakMemoryBytes: number | null;
  cpuSeconds: number | null;
  oomKills: number | null;
  /** Where the figures come from: "cgroup PATH" or "/proc". */
  source: string;
  /** What could not be measured, and why; undefined when everything was. */
  unmeasured?: string;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function fsType(path: string): number | undefined {
  try {
    return statfsSync(path).type;
  } catch {
    return undefined;
  }
}

/** Where the unified (v2) hierarchy is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts. */
export function unifiedMount(base = '/sys/fs/cgroup'): string | undefined {
  if (fsType(base) === CGROUP2_SUPER_MAGIC) return base;
  if (fsType(`${base}/unified`) === CGROUP2_SUPER_MAGIC) return `${base}/unified`;
  return undefined;
}

export interface CgroupHost {
  /** Only the unified hierarchy: cgroup v2. */
  unified: boolean;
  /** Controllers available to the unified hierarchy. */
  controllers: string[];
  summary: string;
  /** What the resource line of a machine with a cgroup shows here. */
  measures: string;
}

export function describeCgroupHost(base = '/sys/fs/cgroup'): CgroupHost {
  const unified = fsType(base) === CGROUP2_SUPER_MAGIC;
  const mount = unifiedMount(base);
  const controllers = mount ? (read(`${mount}/cgroup.controllers`) ?? '').trim().split(/\s+/).filter(Boolean) : [];
  let legacy: string[] = [];
  if (!unified) {
    try {
      legacy = readdirSync(base).filter((name) => fsType(`${base}/${name}`) === CGROUP_SUPER_MAGIC);
    } catch {
      // no cgroup file system at all
    }
  }
  const summary = unified
    ? `cgroup v2 (controllers: ${controllers.join(' ') || 'none'})`
    : legacy.length
      ? `cgroup v1${mount ? ' (hybrid: a unified hierarchy without controllers beside it)' : ''}`
      : 'no cgroup file system mounted';
  const measures = controllers.includes('memory') ? 'peak memory, CPU time and OOM kills' : 'CPU time only (no memory controller in the unified hierarchy)';
  return { unified, controllers, summary, measures };
}

/** The cgroup directory of a unit that pid runs under, on the unified hierarchy. */
export function unitCgroupOf(pid: number, unit: string, base = '/sys/fs/cgroup'): string | undefined {
  const mount = unifiedMount(base);
  const line = (read(`/proc/${pid}/cgroup`) ?? '').split('\n').find((entry) => entry.startsWith('0::'));
  if (!mount || !line) return undefined;
  const parts = line.slice(3).split('/');
  const at = parts.indexOf(unit);
  return at < 0 ? undefined : `${mount}${parts.slice(0, at + 1).join('/')}`;
}

function keyedValue(text: string | undefined, key: string): number | null {
  const match = new RegExp(`^${key} (\\d+)$`, 'm').exec(text ?? '');
  return match ? Number(match[1]) : null;
}

/** The figures of a cgroup v2 directory: what its files offer, null for the rest. */
export function readCgroupResources(dir: string): JobResources {
  const peak = read(`${dir}/memory.peak`);
  const events = read(`${dir}/memory.events`);
  const cpu = keyedValue(read(`${dir}/cpu.stat`), 'usage_usec');
  const resources: JobResources = {
    peakMemoryBytes: peak === undefined ? null : Number(peak.trim()),
    cpuSeconds: cpu === null ? null : cpu / 1e6,
    oomKills: keyedValue(events, 'oom_kill'),
    source: `cgroup ${dir}`,
  };
  const missing = [resources.peakMemoryBytes === null && 'peak memory', resources.oomKills === null && 'OOM kills'].filter(Boolean);
  if (missing.length) {
    resources.unmeasured = `${missing.join(' and ')}: the machine's cgroup has no memory controller${events === undefined ? '' : ' with memory.peak (Linux 5.19 or later)'}`;
  }
  return resources;
}

/** CPU seconds of every process in pid's PID namespace, with the children each has reaped. */
export function namespaceCpuSeconds(pid: number): number | null {
  let namespace: string;
  try {
    namespace = readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/pid`) !== namespace) continue;
    } catch {
      continue;
    }
    const stat = read(`/proc/${entry}/stat`);
    if (!stat) continue;
    // Fields after the command name: utime, stime, cutime, cstime are 14-17 of proc(5).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += [11, 12, 13, 14].reduce((sum, index) => sum + Number(fields[index] ?? 0), 0);
  }
  return ticks / clockTicks;
}

/** The figures of a job's running machine; leader is the machine's PID 1 on the host. */
export function measureJob(record: Pick<JobRecord, 'unit'>, leader: number): JobResources {
  const dir = record.unit ? unitCgroupOf(leader, record.unit) : undefined;
  if (dir) return readCgroupResources(dir);
  return {
    peakMemoryBytes: null,
    cpuSeconds: namespaceCpuSeconds(leader),
    oomKills: null,
    source: '/proc',
    unmeasured: record.unit
      ? 'peak memory and OOM kills: the machine\'s unit has no cgroup on a unified (v2) hierarchy'
      : 'peak memory and OOM kills: a direct host gives the machine no cgroup of its own',
  };
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  for (; value >= 1024 && unit < units.length - 1; unit++) value /= 1024;
  return `${value.toFixed(unit && value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** The one line at the end of the job log. */
export function formatResourceLine(resources: JobResources): string {
  const figures = [
    resources.peakMemoryBytes !== null && `peak memory ${formatBytes(resources.peakMemoryBytes)}`,
    resources.cpuSeconds !== null && `CPU time ${resources.cpuSeconds.toFixed(1)} s`,
    resources.oomKills !== null && `OOM kills ${resources.oomKills}`,
  ].filter(Boolean);
  const measured = figures.length ? `${figures.join(', ')} (${resources.source})` : 'nothing could be measured';
  return `resources used by the job's machine: ${measured}${resources.unmeasured ? `; not measured: ${resources.unmeasured}` : ''}`;
}
