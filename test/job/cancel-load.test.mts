// Cancel (SIGTERM to a stage, as gitlab-runner sends it) and load: 100 jobs
// in a row and 8 at once, each through every stage on the same image.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { StateFixture } from '../support/fixture.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { executable } from '../support/runner.mts';

const stages = ['prepare_script', 'get_sources', 'build_script', 'after_script'];

describe('cancel and load', () => {
  let state: StateFixture;
  before(async () => { state = await StateFixture.withBusybox(); });
  after(() => state.dispose());

  for (const target of ['process', 'process group'] as const) {
    test(`SIGTERM to the run ${target} stops the script inside the machine and exits`, async () => {
      const jobId = `cancel-${target === 'process' ? 'p' : 'g'}`;
      assert.equal((await state.prepare(jobId)).code, 0);
      writeFileSync(`${state.scripts}/long`, 'echo started; sleep 600; echo not reached\n');
      const child = spawn(executable, ['--root', state.root, 'run', '--id', jobId, `${state.scripts}/long`, 'build_script'],
        { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => { output += chunk; });
      while (!output.includes('started')) await new Promise((resolve) => setTimeout(resolve, 20));
      process.kill(target === 'process' ? child.pid! : -child.pid!, 'SIGTERM');
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.notEqual(code, 0);
      assert.doesNotMatch(output, /not reached/);
      const left = await state.stage(jobId, 'after_script', 'ps -o comm | grep -c "^sleep$" || true');
      assert.equal(left.stdout.trim(), '0', 'no sleep is left');
      assert.equal((await state.cleanup(jobId)).code, 0);
      assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
    });
  }

  async function fullJob(jobId: string): Promise<void> {
    const prepared = await state.prepare(jobId);
    assert.equal(prepared.code, 0, prepared.stderr);
    for (const stage of stages) {
      const result = await state.stage(jobId, stage, `echo ${stage} > /${stage}; cat /${stage}`);
      assert.equal(result.stdout, `${stage}\n`, `${jobId} ${stage}: ${result.stderr}`);
    }
    assert.equal((await state.cleanup(jobId)).code, 0);
  }

  test('100 jobs in a row', async () => {
    const start = Date.now();
    for (let i = 0; i < 100; i++) await fullJob(`row-${i}`);
    process.stderr.write(`load: 100 jobs in a row took ${((Date.now() - start) / 1000).toFixed(1)} s\n`);
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });

  test('8 jobs at once, three rounds', async () => {
    const start = Date.now();
    for (let round = 0; round < 3; round++) {
      await Promise.all(Array.from({ length: 8 }, (_, i) => fullJob(`par-${round}-${i}`)));
    }
    process.stderr.write(`load: 3 rounds of 8 parallel jobs took ${((Date.now() - start) / 1000).toFixed(1)} s\n`);
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });
});
