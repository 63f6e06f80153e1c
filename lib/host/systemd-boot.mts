// What a job machine's own systemd does at boot on systemd hosts. prepare
// waits for READY=1, which systemd sends when the last job of its boot is
// done, so everything in the boot is paid by every CI job. Most of a stock
// image's boot serves people and long-lived machines: login prompts, utmp,
// a journal on disk, daily timers. A throw-away machine skips those, and
// keeps what a job may use: its image's enabled services, systemctl,
// journalctl (in memory), logind, D-Bus. The README lists both ("What a job
// may rely on"). Measured in issue 16: READY=1 came ~25% sooner, and the
// machine, with fewer processes and mounts, stops sooner too.
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Bind } from '../nspawn.mts';
import type { NetworkChoice } from '../settings.mts';

/**
 * Generators that have nothing to do in a container of ours: disks,
 * encryption, hibernation, offline updates, the boot loader and the TPM,
 * systemd.run=, and the console login prompt (nobody logs in on the
 * console of a CI machine). Each is a process at every boot. An empty file
 * of the same name in /run/systemd/system-generators masks one
 * (systemd.generator(7)). Kept: debug (systemd.wants=, systemd.mask=), fstab,
 * sysv and rc-local (an image may rely on those), and every generator not
 * named here.
 */
export const skippedGenerators = [
  'systemd-bless-boot-generator',
  'systemd-cryptsetup-generator',
  'systemd-getty-generator',
  'systemd-gpt-auto-generator',
  'systemd-hibernate-resume-generator',
  'systemd-integritysetup-generator',
  'systemd-run-generator',
  'systemd-system-update-generator',
  'systemd-tpm2-generator',
  'systemd-veritysetup-generator',
] as const;

/**
 * Units masked for the machine's boot (systemd.mask= on its command line,
 * kernel-command-line(7)): on the critical path of a stock boot, and of no
 * use in a machine that lives for one job.
 */
export const maskedUnits = [
  // The journal stays in /run/log/journal: a job's machine is thrown away
  // with its /var/log anyway.
  'systemd-journal-flush.service',
  // utmp/wtmp records of the boot and runlevel: who(1) and last(1) only.
  'systemd-update-utmp.service',
  'systemd-update-utmp-runlevel.service',
  // Daily apt, dpkg backup, e2scrub, tmpfiles-clean: no timer starts at boot,
  // so none takes the dpkg lock in the middle of a job. A job may still
  // start a timer of its own.
  'timers.target',
  // hugetlbfs on /dev/hugepages and fusectl: FUSE mounts work without the
  // latter, which only lists and aborts FUSE connections.
  'dev-hugepages.mount',
  'sys-fs-fuse-connections.mount',
] as const;

/**
 * With the host's network the machine has no CAP_NET_ADMIN
 * (systemd-nspawn(1)): an enabled systemd-networkd could only fail, and
 * systemd-networkd-wait-online would hold the boot for two minutes.
 */
const hostNetworkMasks = [
  'systemd-networkd.service',
  'systemd-networkd.socket',
  'systemd-networkd-wait-online.service',
] as const;

/** The masks for a machine on this network. */
export function bootMasks(network: NetworkChoice): string[] {
  return [...maskedUnits, ...(network === 'host' ? hostNetworkMasks : [])];
}

/**
 * Arguments of the machine's systemd (in a container it reads its own argv
 * as the kernel command line). Status lines go to the unit's journal
 * through nspawn's console: errors only, so a failed boot still says why.
 */
export function bootArguments(network: NetworkChoice): string[] {
  return [...bootMasks(network).map((unit) => `systemd.mask=${unit}`), 'systemd.show_status=error'];
}

/**
 * logind is Type=dbus: the boot would wait until it has its bus name, which
 * it takes last, as it enumerates seats. As Type=simple it still starts at
 * boot, and a call that comes before it is ready waits in D-Bus activation,
 * as for any bus-activated service, instead of every prepare waiting.
 */
export const logindDropIn = `[Service]
Type=simple
`;

const bootDir = (jobDir: string): string => `${jobDir}/boot`;

/** The empty files that mask skippedGenerators and the logind drop-in, in the job directory. */
export function createBootFiles(jobDir: string): void {
  mkdirSync(`${bootDir(jobDir)}/generators`, { recursive: true, mode: 0o755 });
  for (const name of skippedGenerators) writeFileSync(`${bootDir(jobDir)}/generators/${name}`, '', { mode: 0o644 });
  writeFileSync(`${bootDir(jobDir)}/logind.conf`, logindDropIn, { mode: 0o644 });
}

export function bootBinds(jobDir: string): Bind[] {
  return [
    { source: `${bootDir(jobDir)}/generators`, target: '/run/systemd/system-generators', readOnly: true },
    { source: `${bootDir(jobDir)}/logind.conf`, target: '/run/systemd/system/systemd-logind.service.d/nspawn-runner.conf', readOnly: true },
  ];
}
