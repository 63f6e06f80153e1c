// Test images: a busybox tree built on the fly (milliseconds, for the fast
// suite) and a debootstrapped Debian image cached on the machine across runs
// (rebuilt when missing) for the end-to-end suite.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { runner } from './runner.mts';
import { testCache } from './test-cache.mts';

export function makeBusyboxImage(dir: string): string {
  for (const sub of ['bin', 'usr/bin', 'etc', 'tmp', 'root', 'proc', 'sys', 'dev', 'run', 'var/tmp']) {
    mkdirSync(`${dir}/${sub}`, { recursive: true });
  }
  copyFileSync('/bin/busybox', `${dir}/bin/busybox`);
  const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const applet of applets) {
    if (applet !== 'busybox' && !existsSync(`${dir}/bin/${applet}`)) symlinkSync('busybox', `${dir}/bin/${applet}`);
  }
  // gitlab-runner's scripts are bash scripts; busybox ash runs the ones the tests use.
  writeFileSync(`${dir}/bin/bash`, '#!/bin/sh\nexec /bin/sh "$@"\n', { mode: 0o755 });
  writeFileSync(`${dir}/etc/os-release`, 'ID=busybox\nPRETTY_NAME="busybox test image"\n');
  writeFileSync(`${dir}/etc/passwd`, 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(`${dir}/etc/group`, 'root:x:0:\n');
  return dir;
}

/** State directory that holds the cached Debian image; jobs in it use unique ids. */
export const debianRoot = `${testCache}/state`;
export const debianImage = 'bookworm';

export async function ensureDebianImage(): Promise<void> {
  if (existsSync(`${debianRoot}/${debianImage}/usr/bin/bash`)) return;
  mkdirSync(debianRoot, { recursive: true });
  const result = await runner(['--root', debianRoot, 'chroot-create', '--suite', 'bookworm', debianImage], { stream: true });
  if (result.code !== 0) throw new Error(`cannot create the Debian test image (exit ${result.code})`);
}

/** State directory with "ssh-bookworm": the Debian image plus openssh-server, a build user and host keys. */
export const sshRoot = `${testCache}/ssh-state`;
export const sshImage = 'ssh-bookworm';

export async function ensureSshImage(): Promise<void> {
  if (existsSync(`${sshRoot}/${sshImage}/usr/sbin/sshd`)) return;
  await ensureDebianImage();
  const staging = `${sshRoot}/.staging-${process.pid}`;
  mkdirSync(sshRoot, { recursive: true });
  // The image is a symlink into the versioned store (.images/): copy what it points at.
  execFileSync('cp', ['-a', '--reflink=auto', '--', `${debianRoot}/${debianImage}/.`, staging]);
  execFileSync('systemd-nspawn', ['--quiet', '--register=no', '--keep-unit', '--console=pipe', `--directory=${staging}`,
    '--setenv=DEBIAN_FRONTEND=noninteractive', '--', 'sh', '-c',
    'apt-get -q update && apt-get -q -y --no-install-recommends install openssh-server && apt-get clean && ' +
    'useradd --shell /bin/bash build && ssh-keygen -A'], { stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('mv', ['--', staging, `${sshRoot}/${sshImage}`]);
}
