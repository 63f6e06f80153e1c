// The product as users run it: Bun on the sources (bin/bun). Every script
// runs directly from its file, nothing in the caller's directory changes how
// it runs, and the stages never load zx (exec.mts says why).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { StateFixture } from './support/fixture.mts';
import { executable, repoRoot } from './support/runner.mts';

const scripts = readdirSync(`${repoRoot}/scripts`).filter((name) => name.endsWith('.mts'));
const header = '#!/bin/sh\n//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"\n';

test('every script runs directly from its source file', () => {
  assert.ok(scripts.length > 10);
  for (const name of scripts) {
    const path = `${repoRoot}/scripts/${name}`;
    assert.ok(readFileSync(path, 'utf8').startsWith(header), `${name} starts with the two lines that run it on bin/bun`);
    assert.ok(statSync(path).mode & 0o100, `${name} is executable`);
    const result = spawnSync(path, ['--help'], { encoding: 'utf8', cwd: '/' });
    assert.equal(result.status, 0, `${name}: ${result.stderr}`);
    assert.match(result.stdout, /^usage: nspawn-runner/, name);
  }
});

test('a bunfig.toml or .env in the current directory changes nothing', () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-cwd-`);
  try {
    // What a user could leave in the directory they run `sudo nspawn-runner shell` from.
    writeFileSync(`${dir}/preload.mjs`, `require('node:fs').writeFileSync(${JSON.stringify(`${dir}/preloaded`)}, '');\n`);
    writeFileSync(`${dir}/bunfig.toml`, 'preload = ["./preload.mjs"]\n');
    writeFileSync(`${dir}/.env`, 'NSPAWN_RUNNER_ROOT=/from-dot-env\n');
    // A variable .env could set: it only adds to the environment, never overrides.
    const env: NodeJS.ProcessEnv = { ...process.env, NSPAWN_RUNNER_CONFIG_DIR: '/nonexistent' };
    delete env.NSPAWN_RUNNER_ROOT;
    for (const argv of [[executable, 'gitlab-config'], [`${repoRoot}/scripts/config.mts`]]) {
      const result = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: dir, env });
      assert.equal(result.status, 0, result.stderr);
      assert.equal((JSON.parse(result.stdout) as { builds_dir: string }).builds_dir, '/var/lib/nspawn-runner/.build', `${argv[0]}: .env ignored`);
      assert.equal(existsSync(`${dir}/preloaded`), false, `${argv[0]}: bunfig.toml ignored`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('the stages never load zx', () => {
  let state: StateFixture;
  let work: string;
  let guarded: string;
  before(async () => {
    state = await StateFixture.withBusybox();
    work = mkdtempSync(`${tmpdir()}/nsr-nozx-`);
    // bin/nspawn-runner, with a Bun plugin that fails any module load from the zx package.
    writeFileSync(`${work}/forbid-zx.mjs`, [
      'Bun.plugin({ name: "forbid-zx", setup(build) {',
      '  build.onLoad({ filter: /\\/node_modules\\/zx\\// }, ({ path }) => { throw new Error(`zx loaded: ${path}`); });',
      '} });',
      '',
    ].join('\n'));
    guarded = `${work}/nspawn-runner`;
    writeFileSync(guarded, `#!/bin/sh\nexec ${repoRoot}/bin/bun --preload ${work}/forbid-zx.mjs ${repoRoot}/scripts/nspawn-runner.mts "$@"\n`, { mode: 0o755 });
  });
  after(async () => {
    await state.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  for (const backend of ['overlay', 'tmpfs']) {
    test(`config, prepare, run and cleanup (${backend})`, async () => {
      const options = { executable: guarded };
      const jobId = `nozx-${backend}`;
      assert.equal((await state.run(['gitlab-config'], options)).code, 0);
      const prepared = await state.prepare(jobId, 'busybox', options, ['--backend', backend]);
      assert.equal(prepared.code, 0, prepared.stderr);
      const ran = await state.stage(jobId, 'build_script', 'echo ran', options);
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /ran/);
      const cleaned = await state.run(['cleanup', '--id', jobId], options);
      assert.equal(cleaned.code, 0, cleaned.stderr);
    });
  }

  test('the guard works: chroot-list, which runs du through zx, trips it', async () => {
    const listed = await state.run(['chroot-list'], { executable: guarded });
    assert.notEqual(listed.code, 0);
    assert.match(listed.stderr, /zx loaded: .*node_modules\/zx\//);
  });
});
