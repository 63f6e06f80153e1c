// The versioned store on plain directories (no root, no machines): layouts,
// publishing, migration, the lock, and which versions may be deleted.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { isServedImagePath, resolveImage, retiredMarker } from '../lib/image.mts';
import { jobsOnImage, removeUnusedVersions, versionsInUse } from '../lib/image-retire.mts';
import {
  currentVersion, isVersionName, layoutOf, listVersions, migratePlainImage, newVersionName, publishVersion, releaseImage,
} from '../lib/image-store.mts';
import { writeJobRecord, type JobRecord } from '../lib/job.mts';
import { lockOrFail, tryLock } from '../lib/lock.mts';
import type { Settings } from '../lib/settings.mts';

test('version names sort by time and are told apart from everything else in the store', () => {
  const older = newVersionName(new Date('2025-01-02T03:04:05.678Z'));
  const newer = newVersionName(new Date('2025-11-12T13:14:15Z'));
  assert.match(older, /^20250102T030405Z-[0-9a-f]{6}$/);
  assert.ok(older < newer);
  assert.match(newVersionName(new Date(), true), /^legacy-\d{8}T\d{6}Z-[0-9a-f]{6}$/);
  for (const name of [older, newer, newVersionName(new Date(), true)]) assert.ok(isVersionName(name), name);
  for (const name of ['image.json', '.lock', `${older}.retired`, 'bookworm', '']) assert.ok(!isVersionName(name), name);
});

describe('the store on disk', () => {
  let root: string;
  let settings: Settings;
  beforeEach(() => {
    root = mkdtempSync(`${tmpdir()}/nsr-store-`);
    settings = { root } as Settings;
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  function addVersion(name: string, version = newVersionName()): string {
    mkdirSync(`${root}/.images/${name}/${version}/etc`, { recursive: true });
    writeFileSync(`${root}/.images/${name}/${version}/etc/version`, version);
    return version;
  }

  function addJob(jobId: string, image: string, imagePath: string): void {
    mkdirSync(`${root}/.jobs/${jobId}`, { recursive: true });
    writeJobRecord(`${root}/.jobs/${jobId}`, {
      jobId, machine: `run-${jobId}`, image, imagePath, backend: 'overlay', host: 'direct', createdAt: new Date().toISOString(),
      state: 'running', preparerPid: process.pid, ownerPid: process.pid,
    } satisfies JobRecord);
  }

  test('layouts: missing, plain, versioned, and an admin\'s own symlink', () => {
    assert.equal(layoutOf(settings, 'a'), 'missing');
    mkdirSync(`${root}/a`);
    assert.equal(layoutOf(settings, 'a'), 'plain');
    const version = addVersion('b');
    publishVersion(settings, 'b', version);
    assert.equal(layoutOf(settings, 'b'), 'versioned');
    assert.equal(readlinkSync(`${root}/b`), `.images/b/${version}`, 'relative, so the state directory can move');
    assert.equal(currentVersion(settings, 'b'), version);
    assert.equal(resolveImage(settings, 'b'), `${root}/.images/b/${version}`);
    symlinkSync(`${root}/a`, `${root}/c`);
    assert.equal(layoutOf(settings, 'c'), 'linked');
    assert.equal(currentVersion(settings, 'c'), undefined);
  });

  test('publishing swaps what new jobs resolve; the old path stays valid until removed', () => {
    const first = addVersion('img');
    publishVersion(settings, 'img', first);
    const pinned = resolveImage(settings, 'img');
    const second = addVersion('img');
    publishVersion(settings, 'img', second);
    assert.equal(resolveImage(settings, 'img'), `${root}/.images/img/${second}`);
    assert.ok(isServedImagePath(pinned), 'a job that resolved the first version may still start on it');
    writeFileSync(retiredMarker(pinned), '');
    assert.equal(isServedImagePath(pinned), false, 'unless it is being deleted');
    assert.equal(isServedImagePath(`${root}/img`), false, 'a symlink is never a pinned path');
  });

  test('a plain image moves into the store; jobs started on it keep its tree alive', async () => {
    mkdirSync(`${root}/plain/etc`, { recursive: true });
    addJob('1', 'plain', `${root}/plain`);
    mkdirSync(`${root}/.images/plain`, { recursive: true });
    const legacy = migratePlainImage(settings, 'plain');
    assert.equal(layoutOf(settings, 'plain'), 'versioned');
    assert.ok(existsSync(`${root}/plain/etc`));
    assert.deepEqual([...versionsInUse(settings, 'plain').keys()], [legacy]);
    assert.deepEqual(jobsOnImage(settings, 'plain').map((job) => job.jobId), ['1']);
    const next = addVersion('plain');
    publishVersion(settings, 'plain', next);
    assert.deepEqual(await removeUnusedVersions(settings, 'plain'), []);
    rmSync(`${root}/.jobs/1`, { recursive: true });
    assert.deepEqual(await removeUnusedVersions(settings, 'plain'), [legacy]);
    assert.deepEqual(listVersions(settings, 'plain'), [next]);
  });

  test('only versions that are neither current nor named by a job record are deleted', async () => {
    const old = addVersion('img', newVersionName(new Date('2025-01-01T00:00:00Z')));
    const used = addVersion('img', newVersionName(new Date('2025-01-02T00:00:00Z')));
    const current = addVersion('img', newVersionName(new Date('2025-01-03T00:00:00Z')));
    publishVersion(settings, 'img', current);
    addJob('7', 'img', `${root}/.images/img/${used}`);
    writeFileSync(`${root}/.images/img/image.json`, '{}');
    assert.deepEqual(await removeUnusedVersions(settings, 'img'), [old]);
    assert.deepEqual(listVersions(settings, 'img'), [used, current]);
    assert.ok(!existsSync(retiredMarker(`${root}/.images/img/${used}`)), 'a kept version is not left marked');
    rmSync(`${root}/.jobs/7`, { recursive: true });
    assert.deepEqual(await removeUnusedVersions(settings, 'img'), [used]);
    assert.ok(existsSync(`${root}/.images/img/image.json`));
  });

  test('a version a machine without a job record runs on (build shell, ssh session) is kept too', async () => {
    const old = addVersion('img', newVersionName(new Date('2025-01-01T00:00:00Z')));
    publishVersion(settings, 'img', addVersion('img'));
    // What /proc shows of `systemd-nspawn --directory=<version> ...`, without starting a machine.
    // sh waits in its read builtin: a shell that ran a command would fork, and
    // its child shows the same command line until it execs (a second pid).
    const machine = spawn('sh', ['-c', 'read -r line', `--directory=${root}/.images/img/${old}`], { argv0: 'systemd-nspawn', stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      await new Promise((resolve) => machine.once('spawn', resolve));
      assert.deepEqual(versionsInUse(settings, 'img').get(old), [`pid ${machine.pid}`]);
      assert.deepEqual(await removeUnusedVersions(settings, 'img'), []);
    } finally {
      machine.kill('SIGKILL');
      await new Promise((resolve) => machine.once('exit', resolve));
    }
    assert.deepEqual(await removeUnusedVersions(settings, 'img'), [old]);
  });

  test('a state directory reached through a symlink: records hold real paths, and still count', async () => {
    mkdirSync(`${root}/real`);
    symlinkSync(`${root}/real`, `${root}/link`);
    const linked = { root: `${root}/link` } as Settings;
    mkdirSync(`${root}/real/.images/img/${newVersionName(new Date('2025-01-01T00:00:00Z'))}`, { recursive: true });
    const [used] = listVersions(linked, 'img');
    publishVersion(linked, 'img', used!);
    const jobPath = resolveImage(linked, 'img');
    assert.equal(jobPath, `${root}/real/.images/img/${used}`);
    const current = newVersionName();
    mkdirSync(`${root}/real/.images/img/${current}`);
    publishVersion(linked, 'img', current);
    mkdirSync(`${root}/real/.jobs/9`, { recursive: true });
    writeJobRecord(`${root}/real/.jobs/9`, {
      jobId: '9', machine: 'run-9', image: 'other-name', imagePath: jobPath, backend: 'overlay', host: 'direct', createdAt: '',
      state: 'running', preparerPid: process.pid, ownerPid: process.pid,
    });
    assert.deepEqual(await removeUnusedVersions(linked, 'img'), []);
    assert.deepEqual(jobsOnImage(linked, 'img').map((job) => job.jobId), ['9']);
  });

  test('the store of a removed image goes with its last version', async () => {
    const version = addVersion('gone');
    writeFileSync(`${root}/.images/gone/image.json`, '{}');
    const lock = lockOrFail(`${root}/.images/gone/.lock`, 'test', 'image gone');
    await removeUnusedVersions(settings, 'gone');
    releaseImage(settings, 'gone', lock);
    assert.ok(!existsSync(`${root}/.images/gone`), `${version} and the store are gone`);
  });

  test('one lock holder at a time; a dead holder\'s lock is taken over', () => {
    const path = `${root}/.images/x/.lock`;
    const lock = tryLock(path, 'chroot-maintenance');
    assert.ok('release' in lock);
    const busy = tryLock(path, 'cleanup');
    assert.ok(!('release' in busy) && busy.purpose === 'chroot-maintenance' && busy.pid === process.pid);
    assert.throws(() => lockOrFail(path, 'chroot-login', 'image x'),
      /image x is busy: chroot-maintenance \(pid \d+\) has been working on it since/);
    lock.release();
    assert.ok(!existsSync(path));

    const dead = spawnSync('true').pid!;
    mkdirSync(path, { recursive: true });
    writeFileSync(`${path}/owner`, JSON.stringify({ pid: dead, startTime: '1', purpose: 'crashed', since: 'then' }));
    const taken = tryLock(path, 'chroot-maintenance');
    assert.ok('release' in taken, 'a stale lock does not block forever');
    taken.release();
  });
});
