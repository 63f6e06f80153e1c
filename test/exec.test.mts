// Host commands: zx's $ as exec.mts sets it up (quoting, errors, missing
// programs, --debug echo) and the lean argv spawn of the stages.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { SystemError } from '../lib/errors.mts';
import { check, run, shellJoin, zx } from '../lib/exec.mts';
import { repoRoot } from './support/runner.mts';

const hostile = ["it's", 'a b', '-rf', '$(id)', '`id`', 'x\ny', '*', '', '; echo pwned', '"\\'];

test('zx passes every value as one word, whatever it holds', async () => {
  const $ = await zx();
  const all = await $`printf '[%s]\\n' ${hostile}`;
  assert.equal(all.stdout, hostile.map((value) => `[${value}]\n`).join(''));
});

test('a failing command is a SystemError naming the program and its last words', async () => {
  const $ = await zx();
  await assert.rejects($`ls -- ${'/nonexistent/nsr'}`, (error: unknown) => {
    assert.ok(error instanceof SystemError);
    assert.match(error.message, /^ls exited with 2: ls: cannot access '\/nonexistent\/nsr'/);
    return true;
  });
  const tolerated = await $({ nothrow: true })`ls -- ${'/nonexistent/nsr'}`;
  assert.equal(tolerated.exitCode, 2);
});

test('a program that is not installed names its Debian package, with zx and with run()', async () => {
  const $ = await zx();
  const noPath = { PATH: '/nonexistent' };
  // Started one at a time: a second one already running would reject unobserved.
  for (const attempt of [() => $({ env: noPath })`btrfs --version`, () => $({ env: noPath, nothrow: true })`btrfs --version`]) {
    await assert.rejects(attempt(), (error: unknown) => {
      assert.ok(error instanceof SystemError);
      assert.deepEqual([error.message, error.hint], ['btrfs not found', 'install the Debian package btrfs-progs']);
      return true;
    });
  }
  // A program's own 127 is its business, not a missing program.
  assert.equal((await $({ nothrow: true })`sh -c ${'exit 127'}`).exitCode, 127);
  await assert.rejects(run(['systemd-nspawn'], { env: noPath }), { message: 'systemd-nspawn not found', hint: 'install the Debian package systemd-container' });
});

test('run() and check(): argv arrays, code or SystemError', async () => {
  assert.deepEqual(await run(['sh', '-c', 'echo out; echo err >&2; exit 3']), { code: 3, signal: null, stdout: 'out\n', stderr: 'err\n' });
  await assert.rejects(check(['sh', '-c', 'echo why >&2; exit 4']), /^SystemError: sh exited with 4: why$/);
  assert.equal(shellJoin(['echo', "it's", 'a b', '-x']), "echo 'it'\\''s' 'a b' -x");
});

test('--debug echoes every zx command through our logger, and ZX_* variables change nothing', () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-zx-`);
  try {
    writeFileSync(`${dir}/echo.mts`, [
      `import { zx } from ${JSON.stringify(`${repoRoot}/lib/exec.mts`)};`,
      `import { setLogLevel } from ${JSON.stringify(`${repoRoot}/lib/log.mts`)};`,
      "setLogLevel('debug');",
      'const $ = await zx();',
      "process.stdout.write((await $`echo ${'a b'}`).stdout);",
      '',
    ].join('\n'));
    const result = spawnSync(`${repoRoot}/bin/bun`, [`${dir}/echo.mts`], {
      encoding: 'utf8',
      env: { ...process.env, ZX_PREFIX: 'echo injected;', ZX_VERBOSE: 'true', ZX_SHELL: '/bin/false' },
    });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, 'a b\n');
    assert.equal(result.stderr, "nspawn-runner: debug: + echo $'a b'\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
