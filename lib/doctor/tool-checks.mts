// doctor: the programs nspawn-runner calls besides systemd-nspawn: image
// creation and maintenance, btrfs, OCI tools, and the gitlab-runner binary
// shared into every machine.
import { closeSync, openSync, readSync } from 'node:fs';
import { listPlaybookNames } from '../image/playbook.mts';
import { findRunnerBinary, runnerBinaryTarget } from '../job/shares.mts';
import { backendFor, findProgram, tryRun, type DoctorContext } from './context.mts';
import { error, ok, warning, type Finding } from './report.mts';

export function checkBootstrappers(ctx: DoctorContext): Finding[] {
  const found = ['debootstrap', 'mmdebstrap'].filter((program) => findProgram(program, ctx.path));
  const bootstrap = found.length
    ? ok('bootstrapper', `${found.join(' and ')}: chroot-create and maintenance can make images`)
    : warning('bootstrapper', 'neither debootstrap nor mmdebstrap is installed: chroot-create, and maintenance of a missing image, fail',
      'apt install debootstrap (or mmdebstrap)');
  const eatmydata = findProgram('eatmydata', ctx.path)
    ? ok('eatmydata', 'bootstraps run under eatmydata (no fsync while an image is made)')
    : warning('eatmydata', 'not installed: image creation waits for every fsync of dpkg', 'apt install eatmydata');
  return [bootstrap, eatmydata];
}

export function checkBtrfsProgs(ctx: DoctorContext): Finding[] {
  const check = 'btrfs-progs';
  let backend: string;
  try {
    backend = backendFor(ctx.settings);
  } catch {
    // the state directory check reports a backend that cannot work
    return [];
  }
  const present = Boolean(findProgram('btrfs', ctx.path));
  if (backend === 'btrfs' && !present) {
    return [error(check, 'btrfs storage, but the btrfs program is missing: no job\'s snapshot can be made', 'apt install btrfs-progs')];
  }
  return [ok(check, present ? 'installed' : `not installed; not needed for ${backend} storage`)];
}

export async function checkAnsible(ctx: DoctorContext): Promise<Finding[]> {
  const check = 'ansible';
  const playbooks = listPlaybookNames(ctx.settings, () => undefined);
  const uses = playbooks.length ? `${playbooks.length} image playbook(s) (${playbooks.join(', ')})` : 'no image playbooks yet';
  if (!findProgram('ansible-playbook', ctx.path)) {
    const finding = `ansible-playbook is not installed; ${uses}`;
    return [playbooks.length
      ? warning(check, `${finding}: chroot-create and chroot-maintenance of those images fail`, 'apt install ansible')
      : ok(check, `${finding}: only image playbooks need it`)];
  }
  // Playbooks reach the image through community.general's chroot connection.
  const listed = await tryRun(['ansible-galaxy', 'collection', 'list', 'community.general'], ctx.path);
  if (!/community\.general\s/.test(listed?.stdout ?? '')) {
    return [warning(check, `ansible-playbook is installed, but the community.general collection (its chroot connection) is not: playbooks fail; ${uses}`,
      'apt install ansible (Debian\'s includes the collections), or ansible-galaxy collection install community.general')];
  }
  return [ok(check, `ansible-playbook with community.general: playbooks can run; ${uses}`)];
}

export function checkOciTools(ctx: DoctorContext): Finding[] {
  const check = 'skopeo, umoci';
  const missing = ['skopeo', 'umoci'].filter((program) => !findProgram(program, ctx.path));
  if (!ctx.settings.oci.enabled) {
    return [ok(check, `OCI images are off (oci.enabled: false): jobs run on local images only${missing.length ? `; to turn them on, also apt install ${missing.join(' ')}` : ''}`)];
  }
  if (missing.length) {
    return [error(check, `OCI images are on, but ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing: jobs that ask for a registry image fail`,
      `apt install ${missing.join(' ')}`)];
  }
  return [ok(check, 'OCI images are on: skopeo pulls them, umoci unpacks them')];
}

/** Jobs with services: their pod reaches out through pasta; without it, only network: private works. */
export function checkServiceTools(ctx: DoctorContext): Finding[] {
  const check = 'pasta (services)';
  if (findProgram('pasta', ctx.path)) return [ok(check, 'installed: a job\'s services share a network namespace with it that reaches out through pasta')];
  if (ctx.settings.network === 'private') return [ok(check, 'not installed; not needed with network: private (the pod has loopback only)')];
  return [warning(check, 'not installed: jobs with services: fail in prepare (their pod has no way out)', 'apt install passt')];
}

/** Whether an ELF file asks for a program interpreter (is dynamically linked). */
export function isDynamicElf(path: string): boolean | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const header = Buffer.alloc(64);
    if (readSync(fd, header, 0, 64, 0) < 64 || header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return undefined;
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    const PT_INTERP = 3;
    return Array.from({ length: phnum }, (_, index) => table.readUInt32LE(index * phentsize)).includes(PT_INTERP);
  } finally {
    closeSync(fd);
  }
}

export async function checkRunnerBinary(ctx: DoctorContext): Promise<Finding[]> {
  const check = 'gitlab-runner binary';
  const setting = ctx.settings.runnerBinary;
  if (setting === 'none') {
    return [ok(check, 'gitlab_runner: none: nothing is shared into machines; cache and artifacts stages need gitlab-runner in each image')];
  }
  let binary: string | undefined;
  try {
    // parentPid 0: doctor is not run by gitlab-runner; PATH is what prepare falls back to.
    binary = findRunnerBinary(setting, { parentPid: 0, pathEnv: ctx.path, readExe: () => undefined });
  } catch (problem) {
    return [error(check, `${(problem as Error).message}: every prepare fails`, 'point gitlab_runner at the gitlab-runner binary, or set it to auto or none')];
  }
  if (!binary) {
    return [warning(check, 'gitlab_runner: auto, and no gitlab-runner in PATH: only a prepare run by gitlab-runner shares one (its own binary); ' +
      'jobs started otherwise have no gitlab-runner for cache and artifacts', 'install gitlab-runner, or set gitlab_runner: /path/to/gitlab-runner')];
  }
  const version = /^Version:\s+(\S+)/m.exec((await tryRun([binary, '--version'], ctx.path))?.stdout ?? '')?.[1];
  const how = setting === 'auto' ? 'gitlab_runner: auto: when gitlab-runner runs prepare, its own binary; else ' : '';
  const finding = `${how}${binary}${version ? ` (version ${version})` : ''}, shared read-only into every machine as ${runnerBinaryTarget}`;
  if (isDynamicElf(binary)) {
    return [warning(check, `${finding}; it is dynamically linked, so it runs only in images that have its libraries`,
      'use gitlab-runner\'s statically linked release binary')];
  }
  return [ok(check, finding)];
}
