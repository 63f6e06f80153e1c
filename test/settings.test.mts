import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { loadSettings, parseConfigDocument } from '../lib/settings.mts';

test('config documents are narrowed with errors that name file and key', () => {
  assert.deepEqual(parseConfigDocument(null, 'f'), {});
  assert.deepEqual(parseConfigDocument({ backend: 'tmpfs', tmpfs_size: '2G', limits: { cpu_weight: 20, memory_max: null } }, 'f'),
    { backend: 'tmpfs', tmpfsSize: '2G', limits: { cpuWeight: 20, memoryMax: undefined } });
  assert.deepEqual(parseConfigDocument({ gitlab_runner: '/usr/bin/gitlab-runner', keep_builds: true }, 'f'),
    { runnerBinary: '/usr/bin/gitlab-runner', keepBuilds: true });
  const bad: Array<[unknown, RegExp]> = [
    [[1], /f: \(top level\) must be a mapping/],
    [{ backend: 'zfs' }, /f: backend must be one of auto, btrfs, overlay, tmpfs/],
    [{ tmpfs_size: 'lots' }, /f: tmpfs_size must be a size/],
    [{ limits: { cpu_weight: -1 } }, /f: limits.cpu_weight must be a positive number/],
    [{ limits: { swap: 1 } }, /unknown key "limits.swap"/],
    [{ roots: '/x' }, /f: unknown key "roots"/],
    [{ gitlab_runner: 'gitlab-runner' }, /f: gitlab_runner must be auto, none or an absolute path/],
    [{ keep_builds: 'yes' }, /f: keep_builds must be true or false/],
  ];
  for (const [doc, message] of bad) assert.throws(() => parseConfigDocument(doc, 'f'), message);
});

test('settings come from defaults, file, environment and command line, in that order', async () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-settings-`);
  try {
    writeFileSync(`${dir}/nspawn-runner.conf`, 'root: /from/file\nbackend: tmpfs\ndefault_image: sid\n');
    const env = { NSPAWN_RUNNER_CONFIG_DIR: dir };
    const fromFile = await loadSettings({}, env);
    assert.equal(fromFile.root, '/from/file');
    assert.equal(fromFile.backend, 'tmpfs');
    assert.equal(fromFile.defaultImage, 'sid');
    assert.equal(fromFile.limits.cpuWeight, 50);
    const fromEnv = await loadSettings({}, { ...env, NSPAWN_RUNNER_ROOT: '/from/env', NSPAWN_RUNNER_BACKEND: 'overlay' });
    assert.equal(fromEnv.root, '/from/env');
    assert.equal(fromEnv.backend, 'overlay');
    const fromArgs = await loadSettings({ root: '/from/args', host: 'direct' }, { ...env, NSPAWN_RUNNER_ROOT: '/from/env' });
    assert.equal(fromArgs.root, '/from/args');
    assert.equal(fromArgs.host, 'direct');
    assert.ok(Object.isFrozen(fromArgs));
    await assert.rejects(loadSettings({ config: `${dir}/missing.conf` }, {}), /not found/);
    await assert.rejects(loadSettings({ root: 'relative' }, env), /absolute path/);
    await assert.rejects(loadSettings({ backend: 'zfs' }, env), /backend must be one of/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('keep_failed takes a duration, and false switches it off', () => {
  assert.deepEqual(parseConfigDocument({ keep_failed: '30m' }, 'f'), { keepFailedSeconds: 1800 });
  assert.deepEqual(parseConfigDocument({ keep_failed: '2h' }, 'f'), { keepFailedSeconds: 7200 });
  assert.deepEqual(parseConfigDocument({ keep_failed: 90 }, 'f'), { keepFailedSeconds: 90 });
  assert.deepEqual(parseConfigDocument({ keep_failed: false }, 'f'), { keepFailedSeconds: 0 });
  for (const bad of ['30 minutes', '-5m', true, 1.5]) {
    assert.throws(() => parseConfigDocument({ keep_failed: bad }, 'f'), /f: keep_failed must be a duration such as 30m/);
  }
});

test('a lenient load reports every bad key and keeps the defaults for them', async () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-settings-`);
  try {
    writeFileSync(`${dir}/nspawn-runner.conf`, 'backend: zfs\nroots: /x\ndefault_image: sid\n');
    const problems: string[] = [];
    const settings = await loadSettings({}, { NSPAWN_RUNNER_CONFIG_DIR: dir, NSPAWN_RUNNER_HOST: 'bsd' }, (problem) => problems.push(problem.message));
    assert.equal(settings.backend, 'auto');
    assert.equal(settings.host, 'auto');
    assert.equal(settings.defaultImage, 'sid');
    assert.equal(problems.length, 3);
    assert.match(problems.join('\n'), /backend must be one of/);
    assert.match(problems.join('\n'), /unknown key "roots"/);
    assert.match(problems.join('\n'), /NSPAWN_RUNNER_HOST: host must be one of/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
