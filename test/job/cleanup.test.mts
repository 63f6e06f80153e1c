// cleanup whatever the job record says: unreadable, corrupt or stale. The
// machine is found from the host's side and stopped, every file of the job
// is removed, and what cannot be removed is named.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { StateFixture } from '../support/fixture.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { systemFailure } from '../support/runner.mts';

const gone = spawnSync('true').pid!;

const breakages: Array<[string, (path: string) => void, string[]]> = [
  ['a truncated record', (path) => writeFileSync(path, readFileSync(path, 'utf8').slice(0, 40)), []],
  ['a record of null', (path) => writeFileSync(path, 'null\n'), []],
  ['an empty record', (path) => writeFileSync(path, '{}\n'), []],
  ['a directory for a record', (path) => { rmSync(path); mkdirSync(path); }, []],
  ['a record with stale pids', (path) => {
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), nspawnPid: gone, leaderPid: gone }));
  }, []],
  ['a truncated record of a tmpfs job', (path) => writeFileSync(path, '{"jobId'), ['--backend', 'tmpfs']],
];

describe('cleanup with a broken job record', () => {
  let state: StateFixture;
  before(async () => { state = await StateFixture.withBusybox(); });
  after(() => state.dispose());

  breakages.forEach(([name, breakRecord, args], index) => {
    test(`${name}: the machine is stopped and every file removed`, async () => {
      const jobId = `broken-${index}`;
      const prepared = await state.prepare(jobId, 'busybox', {}, args);
      assert.equal(prepared.code, 0, prepared.stderr);
      assert.equal(leftoversOf(state.root, [jobId]).processes.length > 0, true, 'the machine runs');
      breakRecord(`${state.root}/.jobs/${jobId}/job.json`);
      const cleaned = await state.cleanup(jobId);
      assert.equal(cleaned.code, 0, cleaned.stderr);
      assert.deepEqual(leftoversOf(state.root, [jobId]), { mounts: [], processes: [], jobDirs: [] });
    });
  });

  test('what cannot be removed is named, and the machine is stopped all the same', async () => {
    const jobId = 'broken-pinned';
    assert.equal((await state.prepare(jobId)).code, 0);
    const pinned = `${state.root}/.jobs/${jobId}/upper/pinned`;
    writeFileSync(pinned, '');
    execFileSync('chattr', ['+i', pinned]);
    try {
      writeFileSync(`${state.root}/.jobs/${jobId}/job.json`, '{');
      const cleaned = await state.cleanup(jobId);
      assert.equal(cleaned.code, systemFailure);
      assert.match(cleaned.stderr, new RegExp(`job ${jobId}: its machine is stopped, but cleanup cannot remove .*${pinned}`));
      assert.deepEqual(leftoversOf(state.root, [jobId]).processes, []);
    } finally {
      execFileSync('chattr', ['-i', pinned]);
    }
    assert.equal((await state.cleanup(jobId)).code, 0);
    assert.deepEqual(leftoversOf(state.root, [jobId]), { mounts: [], processes: [], jobDirs: [] });
  });
});
