// A job with services gets a network namespace of its own, shared by its
// machine and every service machine (--network-namespace-path), as the
// containers of a Kubernetes pod share one, and as gitlab-runner's
// Kubernetes executor runs services. Services listen on the pod's loopback;
// the job reaches them by their host names, which the pod's /etc/hosts maps
// to 127.0.0.1. Two jobs never see each other's services, and nothing on the
// host's network reaches them. Outbound traffic (clones, package downloads)
// goes through pasta (Debian's passt), which turns the pod's packets into
// sockets of the host: no bridge, no firewall rule, no address plan, and no
// port of the pod published (-t/-u none). With network: private the pod has
// loopback only.
//
//   <job>/netns        the namespace, kept by a bind mount (unmounted with the job directory)
//   <job>/hosts        the pod's /etc/hosts, bound read-only into each of its machines
//   <job>/resolv.conf  the pod's /etc/resolv.conf, likewise (with pasta only)
import { readFileSync, writeFileSync } from 'node:fs';
import { SystemError } from '../errors.mts';
import { check } from '../exec.mts';
import { inOurPidNamespace, isRunning, namespacePidsOf, processesOf, signal, startTimeOf, waitForExit } from '../proc.mts';
import type { Bind } from '../nspawn.mts';
import type { NetworkChoice } from '../settings.mts';

export interface PodRecord {
  netns: string;
  hosts: string;
  /** The pod's resolver configuration, when it has a way out. */
  resolvConf?: string;
  /** pasta, which gives the pod outbound access; none with network: private. */
  pastaPid?: number;
  pastaStartTime?: string;
}


/** /etc/hosts of every machine of the pod: localhost, the machines' own names, each service's host names. */
export function buildHostsFile(machineNames: readonly string[], serviceNames: readonly string[]): string {
  return [
    '# nspawn-runner: the job\'s pod (lib/services/pod.mts)',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    `127.0.1.1\t${machineNames.join(' ')}`,
    ...(serviceNames.length ? [`127.0.0.1\t${[...new Set(serviceNames)].join(' ')}`] : []),
    '',
  ].join('\n');
}

/** The address the pod's resolv.conf names when the host's resolver is on the host's loopback (podman's choice). */
export const dnsForwardAddress = '169.254.1.1';

const isLoopback = (address: string) => /^127\./.test(address) || address === '::1';

/**
 * The pod's /etc/resolv.conf: the host's, unless every resolver it names is
 * on the host's loopback (systemd-resolved's 127.0.0.53), which in the pod
 * would be the pod's own. Then the pod asks dnsForwardAddress, and pasta
 * passes those queries on to the host's resolver.
 */
export function podResolvConf(hostText: string): { text: string; forward?: string } {
  const servers = [...hostText.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((match) => match[1]!);
  if (servers.length && !servers.every(isLoopback)) return { text: hostText };
  const rest = hostText.split('\n').filter((line) => !/^\s*nameserver\s/.test(line) && line.trim() !== '');
  return { text: [`nameserver ${dnsForwardAddress}`, ...rest, ''].join('\n'), forward: dnsForwardAddress };
}

/** pasta's flags: a tap in the pod configured like the host's interface, no port published either way. */
export function buildPastaArgs(netns: string, pidFile: string, dnsForward?: string): string[] {
  // pasta drops to nobody by default, which may not enter a namespace root
  // made; it still sandboxes itself (its own mount namespace, seccomp).
  return ['pasta', '--config-net', '--runas', '0', '--quiet', '-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none',
    ...(dnsForward ? ['--dns-forward', dnsForward] : []), '--netns', netns, '--pid', pidFile];
}

function readHostResolvConf(): string {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    return '';
  }
}

/** What every machine of the pod gets bound: its /etc/hosts, and with a way out its /etc/resolv.conf. */
export function podBinds(pod: PodRecord): Bind[] {
  return [
    { source: pod.hosts, target: '/etc/hosts', readOnly: true },
    ...(pod.resolvConf ? [{ source: pod.resolvConf, target: '/etc/resolv.conf', readOnly: true }] : []),
  ];
}

export async function createPod(jobDir: string, network: NetworkChoice, hosts: string): Promise<PodRecord> {
  const pod: PodRecord = { netns: `${jobDir}/netns`, hosts: `${jobDir}/hosts` };
  writeFileSync(pod.hosts, hosts);
  writeFileSync(pod.netns, '');
  // nspawn leaves a namespace it joins as it is, loopback down; pasta brings
  // it up, and without pasta ip(8) does. Low ports are open to every user of
  // the pod, as Docker opens them in containers: a service in a user
  // namespace (private_users) has no privilege over the pod's network. A
  // host that is itself a container may have /proc/sys read-only: then not.
  const openLowPorts = '{ echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start; } 2>/dev/null';
  const setup = network === 'private' ? `${openLowPorts}; ip link set lo up` : `${openLowPorts}; true`;
  await check(['unshare', `--net=${pod.netns}`, 'sh', '-c', setup]);
  if (network === 'private') return pod;
  const resolver = podResolvConf(readHostResolvConf());
  pod.resolvConf = `${jobDir}/resolv.conf`;
  writeFileSync(pod.resolvConf, resolver.text);
  const pidFile = `${jobDir}/pasta.pid`;
  try {
    await check(buildPastaArgs(pod.netns, pidFile, resolver.forward));
  } catch (error) {
    throw new SystemError(`the job's services network has no way out: ${(error as Error).message}`,
      'install passt (apt install passt), or set network: private for offline jobs');
  }
  const pastaPid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!Number.isInteger(pastaPid) || pastaPid <= 1) throw new SystemError(`pasta wrote no pid to ${pidFile}`);
  return { ...pod, pastaPid, pastaStartTime: startTimeOf(pastaPid) };
}

/**
 * Stops pasta. The namespace itself goes when its last user does: its bind
 * mount is unmounted with the job directory (mounts.mts, removeTree).
 */
export async function stopPod(pod: PodRecord | undefined, jobDir: string): Promise<void> {
  const netns = pod?.netns ?? `${jobDir}/netns`;
  const found = pod?.pastaPid && isRunning(pod.pastaPid, pod.pastaStartTime) ? [{ pid: pod.pastaPid, netns }] : pastasWhere((path) => path === netns);
  for (const pasta of found) await stopPasta(pasta);
}

/**
 * gc: stops the pastas whose namespace file isGone (its job directory is);
 * returns those files. pasta quits by itself once that file is deleted (it
 * watches it), not when its directory went another way (moved, restored).
 */
export async function stopStrayPastas(isGone: (netns: string) => boolean): Promise<string[]> {
  const found = pastasWhere(isGone);
  for (const pasta of found) await stopPasta(pasta);
  return found.map((pasta) => pasta.netns);
}

interface Pasta {
  pid: number;
  netns: string;
}

async function stopPasta({ pid, netns }: Pasta): Promise<void> {
  signal(pid, 'SIGKILL');
  if (!(await waitForExit(pid, undefined, 5000))) throw new SystemError(`pasta (pid ${pid}) of ${netns} does not exit`);
}

/**
 * Our pasta processes whose namespace file passes test: a record lost to a
 * crash still finds them. Those of a nested host (a machine that runs jobs
 * of its own) name paths of that host: not ours.
 */
function pastasWhere(test: (netns: string) => boolean): Pasta[] {
  return processesOf('pasta').flatMap(({ pid, argv }) => {
    const at = argv.indexOf('--netns');
    const netns = at > 0 ? argv[at + 1] : undefined;
    return netns !== undefined && test(netns) && isOurs(pid) ? [{ pid, netns }] : [];
  });
}

/**
 * pasta sandboxes itself as PID 1 of a PID namespace of its own, one below
 * ours; a nested host's pasta is deeper, or (without that sandbox) is not
 * PID 1 of the nested host's namespace, where systemd is.
 */
function isOurs(pid: number): boolean {
  const its = namespacePidsOf(pid);
  return inOurPidNamespace(pid) || (its.length === namespacePidsOf('self').length + 1 && its.at(-1) === 1);
}
