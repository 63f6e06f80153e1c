// Issue 11: every process of a job has exactly the sandbox systemd-nspawn
// gives its own payload: capability bounding and effective sets, seccomp
// filter, device access, and no way out through open_by_handle_at on a
// directory bound from the host. Each check compares a job's processes with
// plain `systemd-nspawn` run on the same image with the same bind.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { StateFixture } from '../support/fixture.mts';
import { makeBusyboxImage } from '../support/images.mts';
import { executable } from '../support/runner.mts';
import {
  buildHandleProbe, commandOf, findings, parseSandbox, probeScript, processesInNamespaceOf, sandboxCommand, sandboxOfPid,
  type Findings, type Sandbox,
} from '../support/sandbox-probe.mts';

describe('a job has the sandbox of nspawn\'s payload, on every path into its machine', () => {
  let state: StateFixture;
  let cache: string;
  let payload: Findings;
  let plainSandbox: Sandbox;
  let plainImage: string;

  before(async () => {
    state = await StateFixture.withBusybox();
    cache = `${state.root}/.cache`;
    mkdirSync(cache, { recursive: true });
    buildHandleProbe(cache);
    // The reference: plain systemd-nspawn on a copy of the image, the cache directory bound in as prepare binds it.
    plainImage = makeBusyboxImage(mkdtempSync(`${tmpdir()}/nsr-plain-`));
    // --suppress-sync as prepare asks for it: it adds a seccomp filter.
    const output = execFileSync('systemd-nspawn', ['--quiet', '--register=no', '--keep-unit', '--console=pipe', '--suppress-sync=yes',
      `--directory=${plainImage}`, `--bind=${cache}:${cache}`, '--', '/bin/sh', '-c', probeScript(cache)], { encoding: 'utf8' });
    payload = findings(output);
    // Build shells are plain nspawn payloads, without --suppress-sync.
    plainSandbox = parseSandbox(execFileSync('systemd-nspawn', ['--quiet', '--register=no', '--keep-unit', '--console=pipe',
      `--directory=${plainImage}`, '--', '/bin/sh', '-c', sandboxCommand], { encoding: 'utf8' }));
    assert.equal(payload.handle, 'open_by_handle_at: Operation not permitted', 'nspawn\'s payload cannot open by handle');
  });
  after(async () => {
    await state?.dispose();
    if (plainImage) rmSync(plainImage, { recursive: true, force: true });
  });

  test('stages, after_script and a background process started by an earlier stage', async () => {
    assert.equal((await state.prepare('sandbox-1')).code, 0);
    const build = await state.stage('sandbox-1', 'build_script',
      `${probeScript(cache)}; sleep 1000 & echo $! > /bg.pid`);
    assert.equal(build.code, 0, build.stderr);
    assert.deepEqual(findings(build.stdout), payload);
    const afterScript = await state.stage('sandbox-1', 'after_script',
      `${probeScript(cache)}; grep -E "^(CapBnd|CapEff|Seccomp|Seccomp_filters):" /proc/$(cat /bg.pid)/status | sed s/^/bg-/`);
    assert.equal(afterScript.code, 0, afterScript.stderr);
    assert.deepEqual(findings(afterScript.stdout), payload);
    const background = afterScript.stdout.split('\n').filter((line) => line.startsWith('bg-')).map((line) => line.slice(3)).join('\n');
    assert.deepEqual(parseSandbox(background), payload.sandbox, 'the background process');
    assert.equal((await state.cleanup('sandbox-1')).code, 0);
  });

  test('a cancelled stage\'s leftovers, and every other process of the machine', async () => {
    assert.equal((await state.prepare('sandbox-2')).code, 0);
    const script = `${state.scripts}/sandbox-2-cancel`;
    // A leftover in a session of its own outlives the cancel of its stage.
    writeFileSync(script, "setsid sleep 4242 & trap '' TERM; sleep 1000\n");
    const run = spawn(executable, ['--root', state.root, 'run', '--id', 'sandbox-2', script, 'build_script'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => run.once('exit', resolve));
    const record = JSON.parse(readFileSync(`${state.root}/.jobs/sandbox-2/job.json`, 'utf8')) as { leaderPid: number };
    for (let tries = 0; !processesInNamespaceOf(record.leaderPid).some((pid) => commandOf(pid) === 'sleep\x004242\x00'); tries++) {
      assert.ok(tries < 200, 'the stage started its leftover');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    run.kill('SIGTERM');
    await exited;
    const inMachine = processesInNamespaceOf(record.leaderPid);
    assert.ok(inMachine.length >= 3, 'stub init, agent, leftover');
    for (const pid of inMachine) {
      assert.deepEqual(sandboxOfPid(pid), payload.sandbox, `pid ${pid}: ${commandOf(pid)}`);
    }
    assert.equal((await state.cleanup('sandbox-2')).code, 0);
  });

  test('privileged: true gives a job every capability and no seccomp filter, as Docker\'s privileged does', async () => {
    const config = `${state.scripts}/privileged.conf`;
    writeFileSync(config, 'privileged: true\n');
    const env = { NSPAWN_RUNNER_CONFIG: config };
    assert.equal((await state.prepare('sandbox-3', 'busybox', { env })).code, 0);
    const stage = await state.stage('sandbox-3', 'build_script', sandboxCommand, { env });
    const sandbox = parseSandbox(stage.stdout);
    assert.equal(sandbox.CapBnd, sandboxOfPid(process.pid).CapBnd, 'the host\'s bounding set');
    assert.equal(sandbox.Seccomp, '0');
    assert.equal((await state.cleanup('sandbox-3')).code, 0);
  });

  test('a build shell', async () => {
    const output = execFileSync(executable, ['--root', state.root, 'shell', 'busybox', '--', '/bin/sh', '-c', `${sandboxCommand}`],
      { encoding: 'utf8', cwd: '/' });
    assert.deepEqual(parseSandbox(output), plainSandbox);
  });
});
