// Runs an image's playbook with the real ansible-playbook against a tree of
// the image. Ansible's chroot connection (community.general.chroot) runs
// every command as `CHROOT_EXE TREE COMMAND...`; our CHROOT_EXE runs it in
// systemd-nspawn instead of chroot(8), so tasks see a real container: /proc,
// /dev, /sys, the host's DNS, and the right personality for i386 trees.
// Inventory and ansible.cfg are written to a temporary directory, so nothing
// of the host's or the user's ansible set-up leaks in except collections.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { SystemError } from './errors.mts';
import { shellJoin, zx } from './exec.mts';
import { log } from './log.mts';
import { imageNspawnFlags } from './nspawn.mts';

export interface PlaybookRun {
  /** Absolute path of the playbook. */
  playbook: string;
  /** The tree to change: a new, unpublished version of the image. */
  tree: string;
  image: string;
  personality?: string;
}

/** The chroot connection calls `WRAPPER TREE COMMAND...`: run COMMAND in a container of TREE. */
export function buildChrootWrapper(image: string, personality?: string): string {
  // The tree and the command are the only run-time values: passed as "$@", never re-parsed.
  const fixed = shellJoin(['systemd-nspawn', ...imageNspawnFlags({ console: 'pipe', image, personality })]);
  return [
    '#!/bin/sh',
    '# Written by nspawn-runner: ansible\'s chroot connection runs its commands through this.',
    'tree="$1"',
    'shift',
    `exec ${fixed} --directory="$tree" -- "$@"`,
    '',
  ].join('\n');
}

/** One host, the tree, reached through the wrapper. Playbooks say `hosts: all`, as with the original. */
export function buildInventory(run: PlaybookRun, wrapperPath: string): object {
  return {
    all: {
      hosts: {
        [run.tree]: {
          ansible_connection: 'community.general.chroot',
          ansible_chroot_exe: wrapperPath,
          ansible_python_interpreter: '/usr/bin/python3',
          nspawn_runner_image: run.image,
        },
      },
    },
  };
}

export function buildAnsibleConfig(workDir: string): string {
  return [
    '[defaults]',
    `inventory = ${workDir}/inventory.json`,
    // The controller's scratch files go to our temporary directory, not ~/.ansible.
    `local_tmp = ${workDir}/tmp`,
    'retry_files_enabled = False',
    'nocows = True',
    '',
  ].join('\n');
}

export function buildPlaybookArgs(playbook: string): string[] {
  if (!playbook.startsWith('/')) throw new SystemError(`playbook path must be absolute: ${playbook}`);
  return ['ansible-playbook', '--', playbook];
}

/** Runs the playbook; its output goes to stderr. Throws a SystemError when it fails. */
export async function runPlaybook(request: PlaybookRun): Promise<void> {
  const workDir = mkdtempSync(`${tmpdir()}/nspawn-runner-ansible-`);
  try {
    const wrapper = `${workDir}/nspawn-chroot`;
    writeFileSync(wrapper, buildChrootWrapper(request.image, request.personality));
    chmodSync(wrapper, 0o755);
    writeFileSync(`${workDir}/inventory.json`, `${JSON.stringify(buildInventory(request, wrapper), null, 1)}\n`);
    writeFileSync(`${workDir}/ansible.cfg`, buildAnsibleConfig(workDir));
    log.info(`image ${request.image}: running ${request.playbook}; ansible's output follows`);
    const $ = await zx();
    const env = { ...process.env, ANSIBLE_CONFIG: `${workDir}/ansible.cfg` };
    const result = await $({ env, stdio: ['ignore', 2, 2], nothrow: true })`${buildPlaybookArgs(request.playbook)}`;
    if (!result.ok) {
      throw new SystemError(`playbook ${request.playbook} failed for image ${request.image} (${result.signal ?? `exit ${result.exitCode}`})`,
        'see ansible\'s output above; the image was not changed');
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}
