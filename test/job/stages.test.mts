// The four stages against real machines on the fast busybox image: every
// promise of the custom-executor contract that does not need Debian.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { mountScratchBtrfs, type ScratchFilesystem } from '../support/btrfs.mts';
import { StateFixture } from '../support/fixture.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { buildFailure, systemFailure } from '../support/runner.mts';

// The same suite on every storage backend, each on a real filesystem: overlay
// and tmpfs over the temp directory (ext4 here), btrfs on a loop-mounted file.
for (const backend of ['overlay', 'tmpfs', 'btrfs'] as const) describe(`stages on a busybox machine (${backend}, direct host)`, () => {
  let state: StateFixture;
  let scratch: ScratchFilesystem | undefined;
  before(async () => {
    if (backend === 'btrfs') scratch = mountScratchBtrfs();
    state = await StateFixture.withBusybox(['--backend', backend], scratch?.mountPoint);
  });
  // The scratch filesystem goes even when the fixture never came up.
  after(async () => {
    try { await state?.dispose(); } finally { scratch?.dispose(); }
  });

  test('config prints only the executor JSON', async () => {
    const result = await state.run(['gitlab-config']);
    assert.equal(result.code, 0, result.stderr);
    const config = JSON.parse(result.stdout);
    assert.equal(config.builds_dir, `${state.root}/.build`);
    assert.equal(config.driver.name, 'nspawn-runner');
  });

  test('a full job: files and a background process survive from stage to stage, nothing survives cleanup', async () => {
    const prepared = await state.prepare('101');
    assert.equal(prepared.code, 0, prepared.stderr);
    assert.match(prepared.stderr, new RegExp(`machine run-101 on image busybox \\(${backend} storage, direct host\\)`));
    // The background loop keeps the stage's stdout open: the stage must end anyway.
    const first = await state.stage('101', 'build_script', [
      'echo built > /artifact',
      '(while true; do echo tick; sleep 1; done) &',
      'echo $! > /service.pid',
      'echo first stage done',
    ].join('\n'));
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /first stage done/);
    const second = await state.stage('101', 'after_script', 'cat /artifact; kill -0 "$(cat /service.pid)" && echo service alive');
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /built/);
    assert.match(second.stdout, /service alive/);
    assert.ok(!existsSync(`${state.root}/busybox/artifact`), 'the image itself is never modified');

    const cleaned = await state.cleanup('101');
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
    assert.equal(readFileSync('/proc/mounts', 'utf8').includes(`${state.root}/.jobs/101`), false);
  });

  test('exit codes: a failing script is a build failure, an executor error a system failure', async () => {
    assert.equal((await state.prepare('102')).code, 0);
    const codeFile = `${mkdtempSync(`${tmpdir()}/nsr-code-`)}/code`;
    try {
      const failed = await state.stage('102', 'build_script', 'echo failing; exit 7', { env: { BUILD_EXIT_CODE_FILE: codeFile } });
      assert.equal(failed.code, buildFailure);
      assert.match(failed.stdout, /failing/);
      assert.equal(readFileSync(codeFile, 'utf8'), '7\n');
    } finally {
      rmSync(codeFile.replace(/\/code$/, ''), { recursive: true, force: true });
    }
    const missingScript = await state.run(['run', '--id', '102', '/nonexistent/script', 'build_script']);
    assert.equal(missingScript.code, systemFailure);
    assert.match(missingScript.stderr, /cannot read script/);
    const neverPrepared = await state.stage('999', 'build_script', 'true');
    assert.equal(neverPrepared.code, systemFailure);
    assert.match(neverPrepared.stderr, /job 999 has no machine/);
    const noId = await state.run(['run', '/dev/null', 'build_script'], { env: { CUSTOM_ENV_CI_JOB_ID: '' } });
    assert.equal(noId.code, systemFailure);
    assert.match(noId.stderr, /no job id/);
    assert.equal((await state.cleanup('102')).code, 0);
  });

  test('the job environment is the script\'s: host variables do not leak into the machine', async () => {
    assert.equal((await state.prepare('103')).code, 0);
    const result = await state.stage('103', 'build_script', 'env', { env: { HOST_ONLY_SECRET: 'leaked-value' } });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout, /leaked-value|CUSTOM_ENV_|BUILD_FAILURE_EXIT_CODE/);
    assert.match(result.stdout, /PATH=\/usr\/local\/sbin/);
    // Stage names gitlab-runner may add later (step_<name>, ...) run like any other.
    const future = await state.stage('103', 'step_release', 'echo future stage ran');
    assert.equal(future.code, 0, future.stderr);
    assert.match(future.stdout, /future stage ran/);
    assert.equal((await state.cleanup('103')).code, 0);
  });

  test('prepare twice is refused, cleanup is idempotent, a job that never started cleans fine', async () => {
    assert.equal((await state.prepare('104')).code, 0);
    const again = await state.prepare('104');
    assert.equal(again.code, systemFailure);
    assert.match(again.stderr, /job 104 is already prepared/);
    const stillRunning = await state.stage('104', 'build_script', 'echo still here');
    assert.match(stillRunning.stdout, /still here/, 'the refused prepare left the running machine alone');
    assert.equal((await state.cleanup('104')).code, 0);
    assert.equal((await state.cleanup('104')).code, 0);
    assert.equal((await state.cleanup('105')).code, 0);
    assert.deepEqual(leftoversOf(state.root).jobDirs, []);
  });

  test('two jobs on the same image at once do not see each other', async () => {
    const [a, b] = await Promise.all([state.prepare('106'), state.prepare('107')]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const [writeA, writeB] = await Promise.all([
      state.stage('106', 'build_script', 'echo A > /mine; hostname'),
      state.stage('107', 'build_script', 'echo B > /mine; hostname'),
    ]);
    assert.match(writeA.stdout, /run-106/);
    assert.match(writeB.stdout, /run-107/);
    const [readA, readB] = await Promise.all([
      state.stage('106', 'after_script', 'cat /mine; ps | grep -c "sleep infinity"'),
      state.stage('107', 'after_script', 'cat /mine'),
    ]);
    assert.match(readA.stdout, /^A$/m);
    assert.match(readB.stdout, /^B$/m);
    await Promise.all([state.cleanup('106'), state.cleanup('107')]);
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });

  test('the cache dir outlives the machine, the gitlab-runner binary is shared read-only', async () => {
    const binary = `${state.scripts}/gitlab-runner`;
    writeFileSync(binary, '#!/bin/sh\necho "helper called with $*"\n', { mode: 0o755 });
    const config = `${state.scripts}/shares.conf`;
    writeFileSync(config, `gitlab_runner: ${binary}\n`);
    const cache = `${state.root}/.cache`;
    assert.equal((await state.prepare('109', 'busybox', {}, ['--config', config])).code, 0);
    const first = await state.stage('109', 'archive_cache', [
      'gitlab-runner cache-archiver --file cache.zip',
      `echo from-109 > ${cache}/marker`,
      'echo tampered > /usr/local/bin/gitlab-runner || echo binary is read-only',
    ].join('\n'));
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /helper called with cache-archiver --file cache.zip/);
    assert.match(first.stdout, /binary is read-only/);
    assert.equal((await state.cleanup('109')).code, 0);
    assert.equal(readFileSync(`${cache}/marker`, 'utf8'), 'from-109\n');
    assert.match(readFileSync(binary, 'utf8'), /helper called/);
    assert.equal((await state.prepare('110')).code, 0);
    const second = await state.stage('110', 'restore_cache', `cat ${cache}/marker`);
    assert.match(second.stdout, /from-109/);
    assert.equal((await state.cleanup('110')).code, 0);
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });

  test('bad input: unknown and hostile image names, missing image', async () => {
    // A CI user's image: arrives through the job's variables, never as an option.
    for (const image of ['../x', '/etc', '.hidden', '-rf', 'a b', 'x'.repeat(300)]) {
      const result = await state.run(['prepare', '--id', '108'], { env: { CUSTOM_ENV_CI_JOB_IMAGE: image } });
      assert.equal(result.code, buildFailure, image);
      assert.match(result.stderr, /invalid image/, image);
      assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
    }
    const missing = await state.prepare('108', 'nosuchimage');
    assert.equal(missing.code, buildFailure);
    assert.match(missing.stderr, /image "nosuchimage" not found .*; available: busybox \(create it with: nspawn-runner chroot-create nosuchimage\)/);
    assert.deepEqual(leftoversOf(state.root).jobDirs, []);
  });
});

// Issue 10: a machine killed from the host (an OOM kill, an admin) while a
// stage runs is the host's failure, which GitLab may retry; never the
// script's. A dying machine still shows its PID 1 for a while, more so with
// memory to free: every round holds some.
describe('a machine that dies during a stage (direct host)', () => {
  let state: StateFixture;
  let exitCodeDir: string;
  before(async () => {
    state = await StateFixture.withBusybox();
    exitCodeDir = mkdtempSync(`${tmpdir()}/nsr-exit-`);
  });
  after(async () => {
    await state?.dispose();
    rmSync(exitCodeDir, { recursive: true, force: true });
  });

  test('is a system failure, in that stage and the next, and writes no build exit code', async () => {
    for (let round = 0; round < 4; round++) {
      const jobId = `dies-${round}`;
      assert.equal((await state.prepare(jobId)).code, 0);
      const exitCodeFile = `${exitCodeDir}/${jobId}`;
      const stage = state.stage(jobId, 'build_script', 'dd if=/dev/zero bs=64M count=1 2>/dev/null | sleep 300 & touch /started; sleep 300',
        { env: { BUILD_EXIT_CODE_FILE: exitCodeFile } });
      while (!existsSync(`${state.root}/.jobs/${jobId}/upper/started`)) await new Promise((resolve) => setTimeout(resolve, 20));
      const { leaderPid } = JSON.parse(readFileSync(`${state.root}/.jobs/${jobId}/job.json`, 'utf8')) as { leaderPid: number };
      process.kill(leaderPid, 'SIGKILL');
      const result = await stage;
      assert.equal(result.code, systemFailure, `round ${round}: ${result.stderr}`);
      assert.match(result.stderr, new RegExp(`machine run-${jobId} stopped during stage build_script`));
      assert.ok(!existsSync(exitCodeFile), 'no build exit code for a system failure');
      const next = await state.stage(jobId, 'after_script', 'echo after');
      assert.equal(next.code, systemFailure, next.stderr);
      assert.match(next.stderr, new RegExp(`machine run-${jobId} of job ${jobId} is not running`));
      assert.equal((await state.cleanup(jobId)).code, 0);
    }
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });
});
