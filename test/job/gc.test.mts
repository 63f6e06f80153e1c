// Job health from a job record, without machines: the processes a record
// names are this test's own (alive) or a child that has exited (gone).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { jobHealth } from '../../lib/job/gc.mts';
import type { JobRecord } from '../../lib/job/record.mts';
import { startTimeOf } from '../../lib/proc.mts';

const alive = { pid: process.pid, startTime: startTimeOf(process.pid) };
const gone = spawnSync('true').pid!;

function record(machinePid: number, ownerPid: number): JobRecord {
  return {
    jobId: 'h1', machine: 'run-h1', image: 'busybox', imagePath: '/nowhere', backend: 'overlay', host: 'direct',
    createdAt: new Date().toISOString(), state: 'running', preparerPid: gone,
    nspawnPid: machinePid, leaderPid: machinePid,
    ownerPid, ownerStartTime: ownerPid === alive.pid ? alive.startTime : undefined,
  };
}

test('health: a running machine with a live owner runs, with a dead owner or no machine it is orphaned', async () => {
  assert.equal(await jobHealth(record(alive.pid, alive.pid)), 'running');
  assert.equal(await jobHealth(record(alive.pid, gone)), 'orphaned');
  assert.equal(await jobHealth(record(gone, alive.pid)), 'orphaned');
});

test('health: an owner that cannot be known (prepare started from another PID namespace) is not a dead one', async () => {
  // getppid() is 0 there: the record says ownerPid 0, "unknown".
  assert.equal(await jobHealth(record(alive.pid, 0)), 'running', 'alive while its machine runs');
  assert.equal(await jobHealth(record(gone, 0)), 'orphaned', 'gc may collect it once the machine is gone');
});
