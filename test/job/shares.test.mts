import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildNspawnArgs } from '../../lib/nspawn.mts';
import { loadSettings } from '../../lib/settings.mts';
import { buildShares, findRunnerBinary, runnerBinaryTarget, type BinaryLookup } from '../../lib/job/shares.mts';

test('the gitlab-runner binary to share: setting, parent process, PATH', () => {
  const files = new Set(['/usr/bin/gitlab-runner', '/opt/glr/gitlab-runner-amd64', '/usr/local/bin/gitlab-runner', '/srv/glr']);
  const lookup = (exe: string | undefined, pathEnv = '/usr/local/bin:/usr/bin'): BinaryLookup => ({
    parentPid: 1234, pathEnv, readExe: () => exe, isExecutableFile: (path) => files.has(path),
  });
  const table: Array<[string, BinaryLookup, string | undefined]> = [
    // gitlab-runner started us: the very binary driving this job wins over PATH.
    ['auto', lookup('/opt/glr/gitlab-runner-amd64'), '/opt/glr/gitlab-runner-amd64'],
    // A parent that is not gitlab-runner (a shell, node, sudo) is never shared.
    ['auto', lookup('/usr/bin/node'), '/usr/local/bin/gitlab-runner'],
    ['auto', lookup('/usr/bin/gitlab-runner (deleted)', '/usr/bin'), '/usr/bin/gitlab-runner'],
    ['auto', lookup(undefined, 'relative:/usr/bin'), '/usr/bin/gitlab-runner'],
    ['auto', lookup('/usr/bin/bash', '/nowhere'), undefined],
    ['none', lookup('/usr/bin/gitlab-runner'), undefined],
    ['/srv/glr', lookup('/usr/bin/gitlab-runner'), '/srv/glr'],
  ];
  for (const [setting, input, expected] of table) assert.equal(findRunnerBinary(setting, input), expected, `${setting} ${input.pathEnv}`);
  assert.throws(() => findRunnerBinary('/missing/gitlab-runner', lookup(undefined)), /gitlab_runner: \/missing\/gitlab-runner is not an executable file/);
});

test('every machine gets the cache dir, the builds dir when kept, and the binary read-only', async () => {
  const base = await loadSettings({ root: '/srv/nsr' }, { NSPAWN_RUNNER_CONFIG_DIR: '/nonexistent' });
  assert.deepEqual(buildShares(base, undefined), [{ source: '/srv/nsr/.cache', target: '/srv/nsr/.cache', readOnly: false }]);
  const kept = { ...base, keepBuilds: true };
  assert.deepEqual(buildShares(kept, '/usr/bin/gitlab-runner'), [
    { source: '/srv/nsr/.cache', target: '/srv/nsr/.cache', readOnly: false },
    { source: '/srv/nsr/.build', target: '/srv/nsr/.build', readOnly: false },
    { source: '/usr/bin/gitlab-runner', target: runnerBinaryTarget, readOnly: true },
  ]);
  const args = buildNspawnArgs({
    machine: 'run-1', storageArgs: [], boot: false, payload: ['true'], register: false, systemdVersion: 252, network: 'host',
    binds: buildShares(kept, '/opt/a:b/gitlab-runner'),
  });
  assert.ok(args.includes('--bind=/srv/nsr/.cache:/srv/nsr/.cache'));
  assert.ok(args.includes('--bind-ro=/opt/a\\:b/gitlab-runner:/usr/local/bin/gitlab-runner'));
});
