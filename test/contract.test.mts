import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import {
  buildExecutorConfig, buildFailureExitCode, jobImageFromEnv, reportBuildExitCode, systemFailureExitCode,
} from '../lib/contract.mts';
import { loadSettings } from '../lib/settings.mts';

test('exit codes come from the environment, with gitlab-runner\'s values when run by hand', () => {
  assert.equal(buildFailureExitCode({}), 1);
  assert.equal(systemFailureExitCode({}), 2);
  assert.equal(buildFailureExitCode({ BUILD_FAILURE_EXIT_CODE: '7' }), 7);
  assert.equal(systemFailureExitCode({ SYSTEM_FAILURE_EXIT_CODE: '9' }), 9);
  assert.equal(buildFailureExitCode({ BUILD_FAILURE_EXIT_CODE: 'junk' }), 1);
});

test('the job response file wins over a CI variable for the image', () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-contract-`);
  try {
    const file = `${dir}/job.json`;
    writeFileSync(file, JSON.stringify({ id: 1, image: { name: 'trusted' } }));
    assert.equal(jobImageFromEnv({ JOB_RESPONSE_FILE: file, CUSTOM_ENV_CI_JOB_IMAGE: 'overridden' }), 'trusted');
    writeFileSync(file, JSON.stringify({ id: 1 }));
    assert.equal(jobImageFromEnv({ JOB_RESPONSE_FILE: file, CUSTOM_ENV_CI_JOB_IMAGE: 'variable' }), 'variable');
    writeFileSync(file, 'not json');
    assert.equal(jobImageFromEnv({ JOB_RESPONSE_FILE: file, CUSTOM_ENV_CI_JOB_IMAGE: 'variable' }), 'variable');
    assert.equal(jobImageFromEnv({}), undefined);
    reportBuildExitCode(5, { BUILD_EXIT_CODE_FILE: `${dir}/code` });
    assert.equal(readFileSync(`${dir}/code`, 'utf8'), '5\n');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('config_exec JSON has the keys gitlab-runner reads', async () => {
  const settings = await loadSettings({ root: '/srv/nsr' }, { NSPAWN_RUNNER_CONFIG_DIR: '/nonexistent' });
  const config = buildExecutorConfig(settings);
  assert.equal(config.builds_dir, '/srv/nsr/.build');
  assert.equal(config.cache_dir, '/srv/nsr/.cache');
  assert.equal(config.builds_dir_is_shared, false);
  // A builds directory shared into every machine needs gitlab-runner to keep concurrent jobs apart.
  assert.equal(buildExecutorConfig({ ...settings, keepBuilds: true }).builds_dir_is_shared, true);
  assert.equal(config.driver.name, 'nspawn-runner');
  assert.equal(typeof config.hostname, 'string');
});
