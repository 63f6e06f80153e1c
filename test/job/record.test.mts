import assert from 'node:assert/strict';
import { test } from 'node:test';
import { machineName, parseJobId, parseJobRecord } from '../../lib/job/record.mts';
import { JobError, SystemError } from '../../lib/errors.mts';

test('job ids become machine names', () => {
  for (const id of ['1', '123456789', 'sample-42', 'A1']) assert.equal(machineName(parseJobId(id)), `run-${id}`);
});

test('missing job id is a system failure naming the fix', () => {
  assert.throws(() => parseJobId(undefined), (error: unknown) => error instanceof SystemError && /CUSTOM_ENV_CI_JOB_ID/.test(error.hint ?? ''));
  assert.throws(() => parseJobId(''), SystemError);
});

test('job ids that would not make a safe machine name are refused', () => {
  for (const id of ['-1', '../1', '1/2', '1 2', 'a_b', 'x'.repeat(61), '1\n', '.1']) {
    assert.throws(() => parseJobId(id), JobError, JSON.stringify(id));
  }
});

test('job records that would send run, cleanup or gc astray are refused', () => {
  const good = {
    jobId: '1', machine: 'run-1', image: 'img', imagePath: '/s/img', backend: 'overlay', host: 'direct',
    createdAt: '2026-01-01T00:00:00.000Z', state: 'running', preparerPid: 10, ownerPid: 0,
  };
  assert.deepEqual(parseJobRecord(good), good);
  const cases: Array<[unknown, RegExp]> = [
    [null, /not an object/],
    [[good], /not an object/],
    [{}, /jobId is not a string/],
    [{ ...good, host: undefined }, /unknown host mode/],
    [{ ...good, backend: 'zfs' }, /unknown backend "zfs"/],
    [{ ...good, state: 'done' }, /unknown state/],
    [{ ...good, ownerPid: undefined }, /ownerPid is not a process id/],
    [{ ...good, leaderPid: '12' }, /leaderPid is not a process id/],
  ];
  for (const [value, message] of cases) assert.throws(() => parseJobRecord(value), message, JSON.stringify(value));
});
