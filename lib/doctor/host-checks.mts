// doctor: the host itself. systemd-nspawn and its features, the host mode,
// cgroups (limits and the resource line), /run, user namespaces, networking.
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { chooseHostName, missingForSystemd } from '../host/select.mts';
import { describeCgroupHost } from '../job/resources.mts';
import type { Settings } from '../settings.mts';
import { findProgram, tryRun, type DoctorContext } from './context.mts';
import { error, ok, warning, type Finding } from './report.mts';

const TMPFS_MAGIC = 0x01021994;

/** Below this, nspawn lacks what every job uses (--console=pipe, --as-pid2, --overlay). */
export const minimumSystemd = 242;

export async function checkNspawn(ctx: DoctorContext): Promise<Finding[]> {
  const check = 'systemd-nspawn';
  if (!findProgram('systemd-nspawn', ctx.path)) {
    return [error(check, 'systemd-nspawn is not installed: no machine can start, so no job can run', 'apt install systemd-container')];
  }
  const result = await tryRun(['systemd-nspawn', '--version'], ctx.path);
  const version = Number(/systemd (\d+)/.exec(result?.stdout ?? '')?.[1] ?? 0);
  if (!version) return [error(check, `systemd-nspawn --version does not run: ${result?.stderr.trim() || 'no output'}`, 'reinstall systemd-container')];
  return [nspawnFinding(version, ctx.settings)];
}

/** What a systemd version means for the features this project uses (systemd-nspawn(1)). */
export function nspawnFinding(version: number, settings: Pick<Settings, 'privateUsers' | 'limits'>): Finding {
  const check = 'systemd-nspawn';
  if (version < minimumSystemd) {
    return error(check, `systemd ${version} is too old: jobs need --console=pipe, --as-pid2 and --overlay (systemd ${minimumSystemd} or later)`,
      'upgrade systemd-container (Debian bullseye or later)');
  }
  const lacking: string[] = [];
  if (version < 249 && settings.limits.memoryMax !== undefined) lacking.push('MemoryMax= for machines (249), so limits.memory_max is left out');
  if (version < 250) lacking.push('--suppress-sync (250), so every fsync of a job reaches the disk');
  if (version < 250 && settings.privateUsers) {
    return error(check, `systemd ${version}: private_users: true needs idmapped binds (systemd 250 or later)`,
      'upgrade systemd-container, or set private_users: false');
  }
  if (lacking.length) return warning(check, `systemd ${version}: jobs run, without ${lacking.join('; ')}`, 'upgrade systemd-container');
  return ok(check, `systemd ${version}: every feature used is there (--overlay, --as-pid2, --console=pipe, --suppress-sync, idmapped binds)`);
}

export function checkHostMode(ctx: DoctorContext): Finding[] {
  const check = 'host mode';
  const missing = missingForSystemd();
  const { host } = ctx.settings;
  if (host === 'systemd' && missing) {
    return [error(check, `host: systemd is set, but ${missing}: every prepare fails`, 'set host: auto (or direct), or start dbus (apt install dbus)')];
  }
  const name = chooseHostName(ctx.settings);
  const why = host === 'auto' ? (missing ? `auto: ${missing}` : 'auto: systemd is PID 1 and the system bus runs') : `host: ${host} is set`;
  if (name === 'direct') {
    return [ok(check, `direct (${why}): machines are unregistered systemd-nspawn processes with the stage agent as their payload; no machinectl, no unit, no limits`)];
  }
  const lacking = ['machinectl', 'systemd-run', 'systemctl'].filter((program) => !findProgram(program, ctx.path));
  if (lacking.length) return [error(check, `systemd (${why}), but ${lacking.join(', ')} missing: prepare cannot start units`, 'apt install systemd-container')];
  return [ok(check, `systemd (${why}): each machine boots its image's systemd in unit nspawn-runner-run-ID.service, registered with machined`)];
}

function limitsSet(settings: Settings): string[] {
  const { limits } = settings;
  return [
    limits.cpuWeight !== undefined && 'cpu_weight',
    limits.memoryHigh !== undefined && 'memory_high',
    limits.memoryMax !== undefined && 'memory_max',
    limits.tasksMax !== undefined && 'tasks_max',
  ].filter((name): name is string => Boolean(name));
}

export function checkCgroups(ctx: DoctorContext): Finding[] {
  const check = 'cgroups';
  const cgroups = describeCgroupHost();
  const hostName = chooseHostName(ctx.settings);
  const limits = limitsSet(ctx.settings);
  const offFix = 'limits: {cpu_weight: null, memory_high: null, memory_max: null, tasks_max: null} in the configuration silences this';
  const measured = `the job's resource line shows ${hostName === 'direct' ? 'CPU time only (a direct machine has no cgroup of its own)' : cgroups.measures}`;
  if (hostName === 'direct') {
    const finding = `${cgroups.summary}; direct host mode applies no limits${limits.length ? ` (${limits.join(', ')} are set and ignored)` : ''}; ${measured}`;
    return [limits.length ? warning(check, finding, `run on a host with systemd as PID 1 (limits become unit properties), or ${offFix}`) : ok(check, finding)];
  }
  if (!cgroups.unified) {
    return [warning(check, `${cgroups.summary}: on cgroup v1, limits apply to machines but stages' processes are not counted against them; ${measured}`,
      'boot the host with systemd.unified_cgroup_hierarchy=1 on the kernel command line')];
  }
  const missing = ['memory', 'cpu', 'pids'].filter((controller) => !cgroups.controllers.includes(controller));
  if (missing.length && limits.length) {
    return [warning(check, `${cgroups.summary}, without the ${missing.join(', ')} controller(s): those limits are not enforced; ${measured}`,
      `enable the controllers for machine.slice (they are bound to a cgroup v1 hierarchy here), or ${offFix}`)];
  }
  return [ok(check, `${cgroups.summary}: ${limits.length ? `limits (${limits.join(', ')}) are enforced` : 'no limits are set'}; ${measured}`)];
}

/** nspawn keeps a directory per machine here and refuses to remove it from a disk filesystem. */
const propagateDir = '/run/systemd/nspawn/propagate';

export function checkRun(): Finding[] {
  const check = '/run';
  let dir = propagateDir;
  while (!existsSync(dir)) dir = dir.slice(0, dir.lastIndexOf('/')) || '/';
  let type: number;
  try {
    type = statfsSync(dir).type;
  } catch {
    return [warning(check, `cannot read the filesystem of ${dir}`)];
  }
  if (type === TMPFS_MAGIC) return [ok(check, `${dir} is a tmpfs: nspawn removes its per-machine directories quietly`)];
  return [warning(check,
    `${propagateDir} is not on a tmpfs (/run is not one here): every systemd-nspawn run ends with "Attempted to remove disk file system under ${propagateDir}/..." ` +
    '(harmless: noise in nspawn.log of jobs, in ansible\'s output during image maintenance, in the journal)',
    `mkdir -p ${propagateDir} && mount -t tmpfs -o mode=0755,size=4m nspawn-runner ${propagateDir} (at every boot, e.g. an fstab line), or make /run a tmpfs`)];
}

function readNumber(path: string): number | undefined {
  try {
    return Number(readFileSync(path, 'utf8').trim());
  } catch {
    return undefined;
  }
}

export function checkUserNamespaces(ctx: DoctorContext): Finding[] {
  const check = 'user namespaces';
  const max = readNumber('/proc/sys/user/max_user_namespaces');
  const available = max === undefined || max > 0;
  if (!ctx.settings.privateUsers) {
    return [ok(check, `private_users: false: root in a job is root on the host, held in by nspawn's sandbox (capability bounding set, seccomp, device policy)${available ? '; user namespaces are available here (private_users: true)' : ''}`)];
  }
  if (!available) {
    return [error(check, 'private_users: true, but user namespaces are disabled (user.max_user_namespaces = 0): every prepare fails',
      'sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d/), or set private_users: false')];
  }
  return [ok(check, 'private_users: true: each machine gets its own user namespace (root in a job is an unprivileged uid on the host); on overlay and tmpfs storage each image version gets a uid-shifted copy once')];
}

export async function checkNetwork(ctx: DoctorContext): Promise<Finding[]> {
  const check = 'network';
  const { network } = ctx.settings;
  if (network === 'host') return [ok(check, 'host: jobs share the host\'s network, as with the original nspawn-runner')];
  if (network === 'private') return [ok(check, 'private: each machine has only loopback, fully offline')];
  const interfaces = network === 'veth' ? 've-*' : `vz-${network.slice('zone:'.length)}`;
  if (chooseHostName(ctx.settings) === 'systemd') {
    const active = await tryRun(['systemctl', 'is-active', 'systemd-networkd'], ctx.path);
    if (active?.stdout.trim() === 'active') {
      return [ok(check, `${network}: systemd-networkd runs; its 80-container-${network === 'veth' ? 've' : 'vz'}.network gives ${interfaces} DHCP and masquerading`)];
    }
    return [warning(check, `${network}: systemd-networkd does not run, so nothing configures ${interfaces}: machines get a link without an address or a route`,
      'systemctl enable --now systemd-networkd')];
  }
  const forwarding = readNumber('/proc/sys/net/ipv4/ip_forward') === 1;
  const masquerade = await hasMasquerade(ctx.path);
  const lacking = [
    'nothing configures the addresses of host0 and ' + interfaces + ' (systemd-networkd does that on systemd hosts)',
    ...(forwarding ? [] : ['net.ipv4.ip_forward is 0']),
    ...(masquerade ? [] : ['no masquerading rule was found']),
  ];
  return [warning(check, `${network} on a host without systemd-networkd: ${lacking.join('; ')}: machines have no outbound network`,
    `use network: private or host here, or run a DHCP server on ${interfaces}, sysctl -w net.ipv4.ip_forward=1, and masquerade: ` +
    `nft add rule ip nat postrouting iifname "${interfaces.replace('*', '')}*" masquerade`)];
}

async function hasMasquerade(path: string): Promise<boolean> {
  for (const argv of [['nft', 'list', 'ruleset'], ['iptables-save', '-t', 'nat']]) {
    const result = await tryRun(argv, path);
    if (result && /masquerade/i.test(result.stdout)) return true;
  }
  return false;
}
