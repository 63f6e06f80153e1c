// keep_failed: a failed job's machine is kept, entered with shell --job
// (through the machine's stage agent, so with the sandbox of the job's own
// processes), listed by status, and collected by gc once its time is up.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { buildJobShellScript } from '../../lib/job/shell.mts';
import { enterCommand, formatDuration } from '../../lib/job/keep-failed.mts';
import { isRunning } from '../../lib/proc.mts';
import { StateFixture } from '../support/fixture.mts';
import { debianImage, debianRoot, ensureDebianImage } from '../support/images.mts';
import { buildFailure, executable, runner, systemFailure } from '../support/runner.mts';
import { commandOf, parseSandbox, processesInNamespaceOf, sandboxCommand, sandboxOfPid } from '../support/sandbox-probe.mts';

test('durations and the command that enters a kept job', () => {
  assert.equal(formatDuration(1800), '30m');
  assert.equal(formatDuration(7200), '2h');
  assert.equal(formatDuration(86400), '1d');
  assert.equal(formatDuration(90), '90s');
  assert.equal(enterCommand({ root: '/var/lib/nspawn-runner' }, '7'), 'nspawn-runner shell --job 7');
  assert.equal(enterCommand({ root: '/srv/ci' }, '7'), 'nspawn-runner --root /srv/ci shell --job 7');
});

test('the session script: stdio from the FIFOs first, the command quoted, script(1) only when there is one', () => {
  const command = buildJobShellScript('shell-1', { command: ['sh', '-c', "echo 'x'; exit 5"], terminal: false }, '/b', false);
  assert.match(command, /^exec <\/run\/nspawn-runner\/shell-1\.in >\/run\/nspawn-runner\/shell-1\.out 2>\/run\/nspawn-runner\/shell-1\.err\n/);
  assert.match(command, /^exec sh -c 'echo '\\''x'\\''; exit 5'$/m);
  const terminal = buildJobShellScript('shell-1', { command: [], terminal: true, rows: 40, columns: 120, term: 'xterm; rm -rf /' }, '/b', true);
  assert.match(terminal, /^exec script -qefc 'stty rows 40 cols 120 2>\/dev\/null; command -v bash/m);
  assert.doesNotMatch(terminal, /TERM/, 'a TERM that is not a plain name is dropped');
  assert.match(buildJobShellScript('shell-1', { command: [], terminal: true }, '/b', false), /^exec sh -i$/m);
});

interface StatusRow {
  id: string;
  health: string;
  keptUntil: string | null;
  resources: { cpuSeconds: number | null } | null;
}

describe('failed jobs kept for debugging', () => {
  let state: StateFixture;
  let keepEnv: NodeJS.ProcessEnv;
  before(async () => {
    state = await StateFixture.withBusybox();
    writeFileSync(`${state.scripts}/keep.conf`, 'keep_failed: 30m\n');
    keepEnv = { NSPAWN_RUNNER_CONFIG: `${state.scripts}/keep.conf` };
  });
  after(() => state?.dispose());

  const record = (jobId: string) => JSON.parse(readFileSync(`${state.root}/.jobs/${jobId}/job.json`, 'utf8')) as { leaderPid: number; keptUntil?: string };
  const status = async (): Promise<StatusRow[]> => JSON.parse((await state.run(['status', '--json'], { env: keepEnv })).stdout) as StatusRow[];

  test('a failed job is kept, entered with the sandbox of its payload, listed with its expiry, and collected once expired', async () => {
    assert.equal((await state.prepare('kept-1', 'busybox', { env: keepEnv })).code, 0);
    const failed = await state.stage('kept-1', 'build_script', 'echo left-behind > /kept-file; sleep 4711 & exit 3', { env: keepEnv });
    assert.equal(failed.code, buildFailure);
    assert.match(failed.stderr, /machine is kept for 30m after the job ends \(keep_failed\)\. To look inside, as root on the runner host: nspawn-runner --root \S+ shell --job kept-1/);
    const afterScript = await state.stage('kept-1', 'after_script', 'exit 1', { env: keepEnv });
    assert.doesNotMatch(afterScript.stderr, /kept for/, 'said once');

    const cleaned = await state.run(['cleanup', '--id', 'kept-1'], { env: keepEnv });
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.match(cleaned.stderr, /job kept-1 failed: machine run-kept-1 kept until \S+Z/);
    const { leaderPid, keptUntil } = record('kept-1');
    assert.ok(isRunning(leaderPid), 'the machine still runs');
    const expiry = Date.parse(keptUntil!);
    assert.ok(expiry > Date.now() + 25 * 60_000 && expiry <= Date.now() + 30 * 60_000);

    const rows = await state.run(['status'], { env: keepEnv });
    assert.match(rows.stdout, new RegExp(`^kept-1\\tbusybox\\toverlay\\tdirect\\t\\d+s\\tkept\\trun-kept-1\\t${keptUntil!.replaceAll('.', '\\.')}$`, 'm'));
    const [row] = (await status()).filter((entry) => entry.id === 'kept-1');
    assert.equal(row?.health, 'kept');
    assert.equal(row?.keptUntil, keptUntil);

    // The shell is started by the machine's stage agent: same sandbox as the agent, nspawn's payload.
    const agent = processesInNamespaceOf(leaderPid).find((pid) => commandOf(pid).includes('nspawn-runner-agent.sh'));
    assert.ok(agent, 'the machine\'s stage agent');
    const entered = await state.run(['shell', '--job', 'kept-1', '--', 'sh', '-c', `cat /kept-file; ps; ${sandboxCommand}; echo to-err >&2; exit 5`]);
    assert.equal(entered.code, 5, entered.stderr);
    assert.match(entered.stdout, /^left-behind$/m, 'its files');
    assert.match(entered.stdout, /sleep 4711/, 'its processes');
    assert.match(entered.stderr, /^to-err$/m);
    assert.deepEqual(parseSandbox(entered.stdout), sandboxOfPid(agent));
    assert.deepEqual(parseSandbox(entered.stdout).CapBnd, sandboxOfPid(leaderPid).CapBnd);

    const piped = await runPiped(['--root', state.root, 'shell', '--job', 'kept-1'], 'echo from-stdin $((6*7)); pwd; exit 4\n');
    assert.equal(piped.code, 4, piped.stderr);
    assert.match(piped.stdout, /^from-stdin 42$/m);

    // gc leaves it alone until its time is up, then removes it.
    assert.equal((await state.run(['gc'], { env: keepEnv })).code, 0);
    assert.ok(isRunning(leaderPid), 'not expired: kept');
    const path = `${state.root}/.jobs/kept-1/job.json`;
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), keptUntil: new Date(Date.now() - 1000).toISOString() }));
    assert.equal((await status()).find((entry) => entry.id === 'kept-1')?.health, 'orphaned');
    const gc = await state.run(['gc', '--json'], { env: keepEnv });
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual((JSON.parse(gc.stdout) as { jobs: string[] }).jobs, ['kept-1']);
    assert.match(gc.stderr, /job kept-1: kept until \S+, which has passed: removing it/);
    assert.ok(!existsSync(`${state.root}/.jobs/kept-1`));
    assert.ok(!isRunning(leaderPid), 'the machine is gone');
  });

  test('a kept id used again is replaced; a second cleanup removes a kept job; success, system failures and keep_failed off keep nothing', async () => {
    const keep = async (jobId: string) => {
      assert.equal((await state.prepare(jobId, 'busybox', { env: keepEnv })).code, 0);
      assert.equal((await state.stage(jobId, 'build_script', 'exit 1', { env: keepEnv })).code, buildFailure);
      assert.equal((await state.run(['cleanup', '--id', jobId], { env: keepEnv })).code, 0);
      assert.ok(record(jobId).keptUntil, `${jobId} kept`);
    };
    await keep('kept-2');
    const old = record('kept-2').leaderPid;
    const again = await state.prepare('kept-2', 'busybox', { env: keepEnv });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /job kept-2: replacing the kept machine of an earlier job with this id/);
    assert.ok(!isRunning(old));
    assert.equal((await state.stage('kept-2', 'build_script', 'test ! -e /kept-file', { env: keepEnv })).code, 0);
    assert.equal((await state.run(['cleanup', '--id', 'kept-2'], { env: keepEnv })).code, 0);
    assert.ok(!existsSync(`${state.root}/.jobs/kept-2`), 'the new job passed: not kept');

    await keep('kept-3');
    const refused = await state.run(['shell', '--job', 'kept-3', '--', 'true'], { env: { SUDO_USER: 'someone' } });
    assert.equal(refused.code, systemFailure);
    assert.match(refused.stderr, /shell --job is for root only/);
    assert.equal((await state.run(['cleanup', '--id', 'kept-3'], { env: keepEnv })).code, 0);
    assert.ok(!existsSync(`${state.root}/.jobs/kept-3`), 'a second cleanup removes a kept job');

    assert.equal((await state.prepare('kept-4')).code, 0);
    assert.equal((await state.stage('kept-4', 'build_script', 'exit 1')).code, buildFailure);
    assert.equal((await state.cleanup('kept-4')).code, 0);
    assert.ok(!existsSync(`${state.root}/.jobs/kept-4`), 'keep_failed is off by default');
    const notKept = await state.run(['shell', '--job', 'kept-4', '--', 'true']);
    assert.equal(notKept.code, systemFailure);
    assert.match(notKept.stderr, /job kept-4 has no machine/);

    // A machine killed behind the runner's back is a system failure: nothing to keep.
    assert.equal((await state.prepare('kept-5', 'busybox', { env: keepEnv })).code, 0);
    process.kill(record('kept-5').leaderPid, 'SIGKILL');
    assert.equal((await state.stage('kept-5', 'build_script', 'true', { env: keepEnv })).code, systemFailure);
    assert.equal((await state.run(['cleanup', '--id', 'kept-5'], { env: keepEnv })).code, 0);
    assert.ok(!existsSync(`${state.root}/.jobs/kept-5`));
  });
});

/** bin/nspawn-runner with text on its stdin. */
function runPiped(args: string[], input: string, command = executable): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdin.end(input);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('shell --job on a terminal, in a Debian image', () => {
  const jobId = `kept-tty-${process.pid}`;
  const work = mkdtempSync(`${tmpdir()}/nsr-keep-`);
  const config = `${work}/keep.conf`;
  before(async () => {
    await ensureDebianImage();
    writeFileSync(config, 'keep_failed: 10m\n');
  });
  after(async () => {
    // Twice: the first keeps nothing new, a kept job goes with the second.
    await runner(['--root', debianRoot, 'cleanup', '--id', jobId]);
    await runner(['--root', debianRoot, 'cleanup', '--id', jobId]);
    rmSync(work, { recursive: true, force: true });
  });

  test('a login shell with a pseudo-terminal of the machine\'s own, on the host\'s terminal', async () => {
    const env = { NSPAWN_RUNNER_CONFIG: config };
    const args = ['--root', debianRoot];
    assert.equal((await runner([...args, 'prepare', '--id', jobId, debianImage], { env })).code, 0);
    const script = `${work}/build_script`;
    writeFileSync(script, 'echo left-behind > /tmp/kept-file; exit 1\n');
    assert.equal((await runner([...args, 'run', '--id', jobId, script, 'build_script'], { env })).code, buildFailure);
    assert.equal((await runner([...args, 'cleanup', '--id', jobId], { env })).code, 0);
    // script(1) on the host gives the command a terminal; typed lines arrive after the prompt.
    const typed = 'tty; cat /tmp/kept-file; echo $((6*7)); exit 6\n';
    const session = await runPiped(['-qefc', `${executable} --root ${debianRoot} shell --job ${jobId}`, '/dev/null'], typed, 'script');
    assert.equal(session.code, 6, session.stdout + session.stderr);
    assert.match(session.stdout, /^\/dev\/pts\/\d+\r?\r?$/m, 'a pseudo-terminal inside the machine');
    assert.match(session.stdout, /^left-behind\r?\r?$/m);
    assert.match(session.stdout, /^42\r?\r?$/m);
  });
});
