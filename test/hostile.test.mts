// Hostile and broken input at the process boundary: each gets a one-line
// error, a precise exit code, and loses nothing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { StateFixture } from './support/fixture.mts';
import { makeBusyboxImage } from './support/images.mts';
import { leftoversOf } from './support/leftovers.mts';
import { buildFailure, repoRoot, runner, systemFailure } from './support/runner.mts';

const oneLine = (text: string) => text.trim().split('\n').length === 1;

describe('hostile and broken input', () => {
  let state: StateFixture;
  const tried: string[] = [];
  before(async () => { state = await StateFixture.withBusybox(); });
  after(async () => {
    await state.dispose();
    process.stderr.write(`hostile input: ${tried.length} bad inputs tried\n`);
  });

  test('image names from a CI user', async () => {
    const names = ['../x', '/etc', '.hidden', '-rf', '--help', 'a b', 'x'.repeat(300), 'a/../../etc', '$(id)', 'busybox;id', 'img\nx'];
    for (const image of names) {
      const result = await state.run(['prepare', '--id', '1'], { env: { CUSTOM_ENV_CI_JOB_IMAGE: image } });
      tried.push(`image ${JSON.stringify(image).slice(0, 20)}`);
      assert.equal(result.code, buildFailure, image);
      assert.ok(oneLine(result.stderr), result.stderr);
      assert.match(result.stderr, /invalid image/);
    }
    const missing = await state.run(['prepare', '--id', '1'], { env: { CUSTOM_ENV_CI_JOB_IMAGE: 'debian:nosuch' } });
    tried.push('missing image');
    assert.equal(missing.code, buildFailure);
    assert.match(missing.stderr, /image "nosuch" not found .*available: busybox/);
    assert.ok(existsSync(`${state.root}/busybox/bin/busybox`), 'the image is untouched');
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });

  test('job ids', async () => {
    for (const id of ['', '-5', '../1', '1/2', 'a b', 'x'.repeat(61), '1;id']) {
      for (const command of ['prepare', 'run', 'cleanup']) {
        const args = command === 'run' ? ['/dev/null', 'build_script'] : command === 'prepare' ? ['busybox'] : [];
        const result = await state.run([command, ...args], { env: { CUSTOM_ENV_CI_JOB_ID: id } });
        tried.push(`${command} id ${JSON.stringify(id).slice(0, 12)}`);
        assert.ok([buildFailure, systemFailure].includes(result.code), `${command} ${id}: ${result.code}`);
        assert.ok(oneLine(result.stderr), result.stderr);
        assert.match(result.stderr, id === '' ? /no job id/ : /invalid job id/);
      }
    }
    assert.deepEqual(leftoversOf(state.root).jobDirs, []);
  });

  test('run and cleanup of a job never prepared, a missing script, options as arguments', async () => {
    const run = await state.stage('never', 'build_script', 'true');
    tried.push('run never prepared');
    assert.equal(run.code, systemFailure);
    assert.ok(oneLine(run.stderr));
    assert.equal((await state.cleanup('never')).code, 0);
    tried.push('cleanup never prepared');
    assert.equal((await state.prepare('s1')).code, 0);
    const missing = await state.run(['run', '--id', 's1', `${state.scripts}/nope`, 'build_script']);
    tried.push('missing script');
    assert.equal(missing.code, systemFailure);
    assert.match(missing.stderr, /cannot read script .*ENOENT/);
    const directory = await state.run(['run', '--id', 's1', state.scripts, 'build_script']);
    tried.push('script is a directory');
    assert.equal(directory.code, systemFailure);
    assert.match(directory.stderr, /is not a regular file/);
    const option = await state.run(['run', '--id', 's1', '--frobnicate', 'x']);
    tried.push('unknown option');
    assert.equal(option.code, systemFailure);
    assert.match(option.stderr, /unknown option --frobnicate/);
    // A stage name is only a label: an unknown (future) one still runs.
    assert.match((await state.stage('s1', 'step_release', 'echo future stage')).stdout, /future stage/);
    assert.equal((await state.cleanup('s1')).code, 0);
  });

  test('no root', async () => {
    // An installation anybody can read: the checkout may sit in a private
    // directory, so a copy of what runs (sources, runtime, packages) goes where anybody can.
    const install = mkdtempSync(`${tmpdir()}/nsr-install-`);
    try {
      execFileSync('cp', ['-a', ...['bin', 'scripts', 'lib', 'package.json', 'node_modules'].map((name) => `${repoRoot}/${name}`), install]);
      execFileSync('chmod', ['-R', 'a+rX', install]);
      for (const command of [['prepare', '--id', '2', 'busybox'], ['run', '--id', '2', '/dev/null'], ['cleanup', '--id', '2'], ['chroot-create', 'x'], ['gc']]) {
        const result = await runner(['--root', state.root, ...command], { asUser: 65534, executable: `${install}/bin/nspawn-runner` });
        tried.push(`no root: ${command[0]}`);
        assert.equal(result.code, systemFailure, `${command[0]}: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`${command[0]} must run as root`));
      }
    } finally {
      rmSync(install, { recursive: true, force: true });
    }
  });

  test('missing binaries name their Debian package', async () => {
    const bin = mkdtempSync(`${tmpdir()}/nsr-bin-`);
    try {
      // Everything the entry point needs, without systemd-nspawn and debootstrap.
      for (const tool of ['readlink', 'sh', 'nsenter', 'mount', 'umount']) {
        symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), `${bin}/${tool}`);
      }
      const prepare = await state.run(['prepare', '--id', '3', 'busybox'], { env: { PATH: bin } });
      tried.push('no systemd-nspawn');
      assert.equal(prepare.code, systemFailure);
      assert.match(prepare.stderr, /systemd-nspawn not found \(install the Debian package systemd-container\)/);
      assert.deepEqual(leftoversOf(state.root).jobDirs, []);
      const create = await state.run(['chroot-create', 'fresh'], { env: { PATH: bin } });
      tried.push('no debootstrap');
      assert.equal(create.code, systemFailure);
      assert.match(create.stderr, /debootstrap not found \(install the Debian package debootstrap\)/);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  test('state directory missing or read-only', async () => {
    const missingRoot = `${state.root}/does/not/exist`;
    const run = await runner(['--root', missingRoot, 'run', '--id', '4', '/dev/null', 'build_script']);
    tried.push('missing state dir');
    assert.equal(run.code, systemFailure);
    assert.match(run.stderr, /job 4 has no machine/);
    assert.equal((await runner(['--root', missingRoot, 'cleanup', '--id', '4'])).code, 0);

    const readOnly = mkdtempSync(`${tmpdir()}/nsr-ro-`);
    makeBusyboxImage(`${readOnly}/busybox`);
    mkdirSync(`${readOnly}/.jobs`);
    execFileSync('mount', ['--bind', readOnly, readOnly]);
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', readOnly]);
      const prepare = await runner(['--root', readOnly, 'prepare', '--id', '5', 'busybox']);
      tried.push('read-only state dir');
      assert.equal(prepare.code, systemFailure);
      assert.match(prepare.stderr, /read-only/);
      assert.ok(oneLine(prepare.stderr), prepare.stderr);
    } finally {
      execFileSync('umount', [readOnly]);
      rmSync(readOnly, { recursive: true, force: true });
    }
  });

  test('disk full during prepare loses nothing, and works again once there is room', async () => {
    const small = mkdtempSync(`${tmpdir()}/nsr-full-`);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4M,nr_inodes=2000', 'nsr-full', small]);
    try {
      makeBusyboxImage(`${small}/busybox`);
      // Fill every block and every inode that is left.
      try { execFileSync('dd', ['if=/dev/zero', `of=${small}/fill`, 'bs=64k'], { stdio: 'ignore' }); } catch { /* full */ }
      try { for (let i = 0; ; i++) writeFileSync(`${small}/i${i}`, ''); } catch { /* out of inodes */ }
      const prepare = await runner(['--root', small, 'prepare', '--id', '6', 'busybox']);
      tried.push('disk full');
      assert.equal(prepare.code, systemFailure);
      assert.match(prepare.stderr, /disk is full|No space left/);
      assert.ok(oneLine(prepare.stderr), prepare.stderr);
      assert.deepEqual(leftoversOf(small), { mounts: [`nsr-full ${small} tmpfs rw,relatime,size=4096k,nr_inodes=2000 0 0`], processes: [], jobDirs: [] });
      for (const name of readdirSync(small)) if (/^(fill|i\d+)$/.test(name)) rmSync(`${small}/${name}`);
      const again = await runner(['--root', small, 'prepare', '--id', '6', 'busybox']);
      assert.equal(again.code, 0, again.stderr);
      assert.equal((await runner(['--root', small, 'cleanup', '--id', '6'])).code, 0);
    } finally {
      execFileSync('umount', ['--lazy', small]);
      rmSync(small, { recursive: true, force: true });
    }
  });
});
