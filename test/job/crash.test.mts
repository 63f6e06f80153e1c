// Crash recovery: stage scripts and machines killed with SIGKILL at random
// points. After gc (or the runner's own cleanup) nothing is left, and a new
// job with the same id works.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { StateFixture } from '../support/fixture.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { executable, systemFailure } from '../support/runner.mts';

const goBetween = ['python3', '-c', 'import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))'];

/**
 * Starts nspawn-runner ARGS and SIGKILLs it after delayMs. With runnerDies,
 * it runs under a go-between standing for gitlab-runner, and both die: the
 * job then has no live owner.
 */
function killAfter(args: string[], delayMs: number, runnerDies = false): Promise<void> {
  return new Promise((resolve) => {
    const argv = runnerDies ? [...goBetween, executable, ...args] : [executable, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', detached: runnerDies });
    const timer = setTimeout(() => process.kill(runnerDies ? -child.pid! : child.pid!, 'SIGKILL'), delayMs);
    child.on('exit', () => { clearTimeout(timer); resolve(); });
  });
}

/**
 * Prepares through a go-between that exits right away, as a runner that
 * crashed would: the job then has no live owner and is gc's to collect.
 */
function prepareOrphan(state: StateFixture, jobId: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(goBetween[0]!, [...goBetween.slice(1), executable, '--root', state.root, 'prepare', '--id', jobId, 'busybox'],
      { stdio: 'ignore' });
    child.on('exit', (code) => resolve(code ?? -1));
  });
}

const randomDelay = (low: number, high: number) => low + Math.floor(Math.random() * (high - low));

describe('crash recovery', () => {
  let state: StateFixture;
  const kills: string[] = [];
  before(async () => { state = await StateFixture.withBusybox(); });
  after(async () => {
    await state.dispose();
    process.stderr.write(`crash recovery: ${kills.length} kills survived: ${kills.join(', ')}\n`);
  });

  async function assertCleanAndReusable(jobId: string): Promise<void> {
    const gc = await state.run(['gc']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] }, `after gc for ${jobId}`);
    assert.equal((await state.prepare(jobId)).code, 0, 'the same job id works again');
    assert.match((await state.stage(jobId, 'build_script', 'echo reborn')).stdout, /reborn/);
    assert.equal((await state.cleanup(jobId)).code, 0);
  }

  test('prepare killed at random points, with the runner alive (it cleans up) or dead with it', async () => {
    for (let i = 0; i < 8; i++) {
      const delay = randomDelay(60, 260);
      const runnerDies = i % 2 === 1;
      await killAfter(['--root', state.root, 'prepare', '--id', 'kp', 'busybox'], delay, runnerDies);
      kills.push(`prepare@${delay}ms${runnerDies ? '+runner' : ''}`);
      // gitlab-runner calls cleanup after every failed prepare.
      if (!runnerDies) assert.equal((await state.cleanup('kp')).code, 0);
      await assertCleanAndReusable('kp');
    }
  });

  test('run killed mid-stage, then the runner is gone too', async () => {
    for (let i = 0; i < 3; i++) {
      assert.equal(await prepareOrphan(state, 'kr'), 0);
      writeFileSync(`${state.scripts}/long`, 'sleep 600 & echo started; sleep 600\n');
      const delay = randomDelay(150, 400);
      await killAfter(['--root', state.root, 'run', '--id', 'kr', `${state.scripts}/long`, 'build_script'], delay, true);
      kills.push(`run@${delay}ms+runner`);
      await assertCleanAndReusable('kr');
    }
  });

  test('run killed mid-stage, then the runner cleans up', async () => {
    assert.equal((await state.prepare('kc')).code, 0);
    writeFileSync(`${state.scripts}/long`, 'sleep 600\n');
    await killAfter(['--root', state.root, 'run', '--id', 'kc', `${state.scripts}/long`, 'build_script'], 300);
    kills.push('run@300ms+cleanup');
    assert.equal((await state.cleanup('kc')).code, 0);
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });

  test('cleanup killed at random points, then retried, or collected once the runner is gone', async () => {
    for (let i = 0; i < 4; i++) {
      const runnerDies = i % 2 === 1;
      if (runnerDies) assert.equal(await prepareOrphan(state, 'kx'), 0);
      else assert.equal((await state.prepare('kx')).code, 0);
      const delay = randomDelay(70, 200);
      await killAfter(['--root', state.root, 'cleanup', '--id', 'kx'], delay, runnerDies);
      kills.push(`cleanup@${delay}ms${runnerDies ? '+runner' : ''}`);
      if (!runnerDies) assert.equal((await state.cleanup('kx')).code, 0);
      await assertCleanAndReusable('kx');
    }
  });

  test('the machine\'s nspawn killed: the next stage is a system failure, gc collects the rest', async () => {
    assert.equal((await state.prepare('kn')).code, 0);
    const record = JSON.parse(readFileSync(`${state.root}/.jobs/kn/job.json`, 'utf8')) as { nspawnPid: number };
    process.kill(record.nspawnPid, 'SIGKILL');
    kills.push('nspawn');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stage = await state.stage('kn', 'build_script', 'true');
    assert.equal(stage.code, systemFailure);
    assert.match(stage.stderr, /machine run-kn of job kn is not running/);
    await assertCleanAndReusable('kn');
  });

  test('status shows live jobs and orphans', async () => {
    assert.equal((await state.prepare('live')).code, 0);
    assert.equal(await prepareOrphan(state, 'orphan'), 0);
    const status = await state.run(['status', '--json']);
    assert.equal(status.code, 0, status.stderr);
    const rows = JSON.parse(status.stdout) as Array<{ id: string; health: string; image: string; backend: string; host: string }>;
    const byId = Object.fromEntries(rows.map((row) => [row.id, row]));
    assert.equal(byId.live?.health, 'running');
    assert.equal(byId.orphan?.health, 'orphaned');
    assert.deepEqual([byId.live?.image, byId.live?.backend, byId.live?.host], ['busybox', 'overlay', 'direct']);
    // The next prepare sweeps the orphan on its way, and leaves the live job alone.
    assert.equal((await state.prepare('next')).code, 0);
    const after = JSON.parse((await state.run(['status', '--json'])).stdout) as Array<{ id: string }>;
    assert.deepEqual(after.map((row) => row.id).sort(), ['live', 'next']);
    await state.cleanup('live');
    await state.cleanup('next');
  });
});
