import assert from 'node:assert/strict';
import { test } from 'node:test';
import { machineName, parseJobId } from '../lib/job.mts';
import { JobError, SystemError } from '../lib/errors.mts';

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
