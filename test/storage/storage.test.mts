// Storage backends on real filesystems: what each costs on disk, its bounds,
// and the choices and conversions around them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { isBtrfs, isSubvolume } from '../../lib/btrfs.mts';
import { buildTmpfsMountArgs } from '../../lib/storage/tmpfs.mts';
import { mountScratchBtrfs, type ScratchFilesystem } from '../support/btrfs.mts';
import { StateFixture } from '../support/fixture.mts';
import { makeBusyboxImage } from '../support/images.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { buildFailure, systemFailure } from '../support/runner.mts';

/**
 * Bytes used under path. On the test's own btrfs, the filesystem's count (du
 * cannot tell a snapshot's shared extents from copies). Elsewhere the
 * filesystem is shared with every other process on the machine, whose writes
 * would be counted too: there, du of the directory, staying on its filesystem.
 */
function usedBytes(path: string): number {
  execFileSync('sync', ['-f', path]);
  if (isBtrfs(path)) {
    const fs = statfsSync(path);
    return (fs.blocks - fs.bfree) * fs.bsize;
  }
  return Number(execFileSync('du', ['-sxB1', path], { encoding: 'utf8' }).split('\t')[0]);
}

const MiB = 1024 * 1024;

test('the tmpfs mount is bounded by tmpfs_size', () => {
  assert.deepEqual(buildTmpfsMountArgs('/s/.jobs/1/ram', '2G'),
    ['mount', '-t', 'tmpfs', '-o', 'size=2G,mode=0700', '--', 'nspawn-runner-job', '/s/.jobs/1/ram']);
});

describe('storage on real filesystems', () => {
  let scratch: ScratchFilesystem;
  let btrfsState: StateFixture;
  let extState: StateFixture;
  before(async () => {
    scratch = mountScratchBtrfs('2G');
    btrfsState = await StateFixture.withBusybox([], scratch.mountPoint);
    extState = await StateFixture.withBusybox();
    // A "large" image: 150 MiB of data that no job may copy.
    for (const state of [btrfsState, extState]) {
      execFileSync('dd', ['if=/dev/urandom', `of=${state.root}/busybox/large.bin`, 'bs=1M', 'count=150', 'status=none']);
    }
  });
  after(async () => {
    try {
      await btrfsState?.dispose();
      await extState?.dispose();
    } finally {
      scratch?.dispose();
    }
  });

  const cases = [
    { name: 'btrfs (auto-detected)', state: () => btrfsState, args: [] as string[] },
    { name: 'overlay', state: () => extState, args: ['--backend', 'overlay'] },
    { name: 'tmpfs', state: () => extState, args: ['--backend', 'tmpfs'] },
  ];
  for (const { name, state, args } of cases) {
    test(`${name}: a job on a large image adds only the bytes it writes`, async () => {
      const jobId = `disk-${name.split(' ')[0]}`;
      const before = usedBytes(state().root);
      // Through the fixture, so after() cleans the job up even when an assertion fails.
      const prepared = await state().prepare(jobId, 'busybox', {}, args);
      assert.equal(prepared.code, 0, prepared.stderr);
      const wrote = await state().stage(jobId, 'build_script', 'dd if=/dev/zero of=/written bs=1M count=4 2>/dev/null; ls -l /large.bin');
      assert.equal(wrote.code, 0, wrote.stderr);
      const grew = usedBytes(state().root) - before;
      // The job's 4 MiB (none on disk for tmpfs) plus metadata; never the 150 MiB image.
      assert.ok(grew < 20 * MiB, `${name}: the state directory grew by ${(grew / MiB).toFixed(1)} MiB`);
      assert.equal((await state().cleanup(jobId)).code, 0);
    });
  }

  test('a tmpfs job cannot write more than tmpfs_size', async () => {
    const configDir = mkdtempSync(`${tmpdir()}/nsr-conf-`);
    try {
      writeFileSync(`${configDir}/small.conf`, 'backend: tmpfs\ntmpfs_size: 8M\n');
      const withConfig = { env: { NSPAWN_RUNNER_CONFIG: `${configDir}/small.conf` } };
      assert.equal((await extState.prepare('tmpfs-small', 'busybox', withConfig)).code, 0);
      const big = await extState.stage('tmpfs-small', 'build_script', 'dd if=/dev/zero of=/big bs=1M count=16', withConfig);
      assert.equal(big.code, buildFailure);
      assert.match(big.stdout, /No space left on device/);
      assert.equal((await extState.cleanup('tmpfs-small')).code, 0);
      assert.deepEqual(leftoversOf(extState.root), { mounts: [], processes: [], jobDirs: [] });
    } finally {
      rmSync(configDir, { recursive: true, force: true });
    }
  });

  test('forcing btrfs on another filesystem is a clear error', async () => {
    const result = await extState.run(['--backend', 'btrfs', 'prepare', '--id', 'forced', 'busybox']);
    assert.equal(result.code, systemFailure);
    assert.match(result.stderr, /backend btrfs needs the state directory .* on btrfs \(set backend: overlay or tmpfs/);
    assert.equal(existsSync(`${extState.root}/.jobs/forced`), false);
  });

  test('a plain-directory image on btrfs works (overlay) and converts into a subvolume', async () => {
    makeBusyboxImage(`${btrfsState.root}/plain`);
    assert.equal(isSubvolume(`${btrfsState.root}/plain`), false);
    assert.equal((await btrfsState.prepare('plain-1', 'plain')).code, 0);
    assert.ok(existsSync(`${btrfsState.root}/.jobs/plain-1/upper`), 'overlay for a plain directory');
    const busy = await btrfsState.run(['chroot-create', '--convert', 'plain']);
    assert.equal(busy.code, systemFailure);
    assert.match(busy.stderr, /in use by job plain-1/);
    assert.equal((await btrfsState.cleanup('plain-1')).code, 0);

    const converted = await btrfsState.run(['chroot-create', '--convert', 'plain']);
    assert.equal(converted.code, 0, converted.stderr);
    assert.equal(isSubvolume(`${btrfsState.root}/plain`), true);
    assert.ok(statSync(`${btrfsState.root}/plain/bin/busybox`).isFile());
    assert.equal((await btrfsState.prepare('plain-2', 'plain')).code, 0);
    assert.ok(isSubvolume(`${btrfsState.root}/.jobs/plain-2/root`), 'a snapshot for a subvolume');
    assert.equal((await btrfsState.cleanup('plain-2')).code, 0);
    assert.deepEqual(leftoversOf(btrfsState.root), { mounts: [], processes: [], jobDirs: [] });
    assert.deepEqual(execFileSync('btrfs', ['subvolume', 'list', '-o', btrfsState.root], { encoding: 'utf8' }).match(/\.jobs|\.staging\/.+/g), null);
  });
});
