import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse, stringify } from 'smol-toml';
import { buildRunnerToml } from '../../lib/gitlab/runner-toml.mts';
import { loadSettings } from '../../lib/settings.mts';
import { runner } from '../support/runner.mts';

test('the runner TOML parses back to the same values', async () => {
  const settings = await loadSettings({ root: '/srv/nsr' }, { NSPAWN_RUNNER_CONFIG_DIR: '/nonexistent' });
  const data = buildRunnerToml(settings, { executable: '/opt/nspawn-runner/bin/nspawn-runner', defaultImage: 'bookworm', globalArgs: ['--root=/srv/nsr'] });
  // Null-prototype objects from the parser: compare as plain JSON values.
  assert.deepEqual(JSON.parse(JSON.stringify(parse(stringify(data)))), data);
  const custom = data.runners[0]!.custom;
  assert.deepEqual(custom.prepare_args, ['--root=/srv/nsr', 'prepare', '--default-image=bookworm']);
  assert.deepEqual(custom.run_args, ['--root=/srv/nsr', 'run']);
  assert.equal(data.runners[0]!.executor, 'custom');
});

test('the toml command prints only TOML, pointing at this installation', async () => {
  const result = await runner(['toml', '--root', '/srv/nsr', '--default-image', 'sid']);
  assert.equal(result.code, 0, result.stderr);
  const parsed = parse(result.stdout) as { runners: Array<{ builds_dir: string; custom: Record<string, unknown> }> };
  const runnerSection = parsed.runners[0]!;
  assert.equal(runnerSection.builds_dir, '/srv/nsr/.build');
  assert.match(String(runnerSection.custom.run_exec), /\/bin\/nspawn-runner$/);
  assert.deepEqual(runnerSection.custom.prepare_args, ['--root=/srv/nsr', 'prepare', '--default-image=sid']);
});
