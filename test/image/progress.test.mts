// Progress of long work on images: the tools' lines read as phases and
// counters, one live line on a pseudo-terminal versus one plain line per
// phase on a pipe, the full output in a log file in the image's store, and
// its path and last 20 lines on failure. The real tools are replaced by
// stand-ins in PATH that print what they print (and make a tiny tree), so
// this runs in seconds and offline.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { ansibleParser, bootstrapParser, countListedTasks } from '../../lib/image/progress-parsers.mts';
import { formatElapsed, startProgress } from '../../lib/image/progress.mts';
import { mountScratchBtrfs, type ScratchFilesystem } from '../support/btrfs.mts';
import { makeBusyboxImage } from '../support/images.mts';
import { executable, runner, systemFailure } from '../support/runner.mts';

test('debootstrap and mmdebstrap lines become phases and package counts', () => {
  const parse = bootstrapParser();
  const lines: Array<[string, ReturnType<typeof parse>]> = [
    ['I: Retrieving InRelease', undefined],
    ['I: Validating Packages', undefined],
    ['I: Resolving dependencies of required packages...', { phase: 'resolving dependencies' }],
    ['I: Retrieving libc6 2.36-9+deb12u4', { phase: 'downloading', detail: '1 packages' }],
    ['I: Validating libc6 2.36-9+deb12u4', { phase: 'downloading', detail: '1/1 packages' }],
    ['I: Retrieving python3.11 3.11.2-6', { phase: 'downloading', detail: '2 packages' }],
    ['I: Extracting libc6...', { phase: 'extracting', detail: '1/2 packages' }],
    ['I: Installing core packages...', { phase: 'unpacking' }],
    ['I: Unpacking python3.11...', { phase: 'unpacking', detail: '1/2 packages' }],
    ['I: Unpacking required packages...', { phase: 'unpacking' }],
    ['I: Configuring libc6:amd64...', { phase: 'configuring', detail: '1/2 packages' }],
    ['I: Configuring the base system...', { phase: 'configuring' }],
    ['I: Base system installed successfully.', undefined],
    ['I: downloading packages with apt...', { phase: 'downloading' }],
    ['Get:1 http://deb.debian.org/debian bookworm/main amd64 libc6 amd64 2.36-9 [2757 kB]', { detail: '1 packages' }],
    ['I: installing remaining packages inside the chroot...', { phase: 'installing' }],
    ['dpkg: warning: something', undefined],
  ];
  for (const [line, expected] of lines) assert.deepEqual(parse(line), expected, line);
});

test('ansible task headers become "task i/n", n from --list-tasks', () => {
  const listed = '\nplaybook: pb.yaml\n\n  play #1 (all): all\tTAGS: []\n    tasks:\n      first\tTAGS: []\n      apt\tTAGS: []\n';
  assert.equal(countListedTasks(listed), 2);
  const parse = ansibleParser(2);
  assert.equal(parse('PLAY [all] ***************'), undefined);
  assert.deepEqual(parse('TASK [Gathering Facts] *********'), { phase: 'running the playbook', detail: 'task 1/2: Gathering Facts' });
  assert.deepEqual(parse('TASK [first] ***'), { phase: 'running the playbook', detail: 'task 2/2: first' });
  assert.deepEqual(parse('TASK [apt] ***'), { phase: 'running the playbook', detail: 'task 3/3: apt' });
  assert.deepEqual(parse('PLAY RECAP *****'), { detail: '3 tasks done' });
  assert.deepEqual(ansibleParser()('TASK [x] *'), { phase: 'running the playbook', detail: 'task 1: x' });
  assert.equal(formatElapsed(83_400), '1:23');
});

test('the live line is redrawn in place and cleared at the end; the log file has everything', () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-progress-`);
  try {
    let clock = 0;
    let written = '';
    const progress = startProgress({ label: 'image x', logDir: `${dir}/logs`, what: 'create', live: true, columns: 50,
      now: () => clock, write: (text) => (written += text) });
    progress.phase('downloading');
    clock += 1000;
    progress.output('I: Unpacking libc6...\nI: Unp', bootstrapParser());
    progress.output('acking bash...\n', bootstrapParser());
    clock += 1000;
    progress.detail('a very long detail that does not fit into fifty columns at all');
    clock += 60_000;
    progress.phase('configuring');
    progress.done('version v made');
    const draws = written.split('\r\x1b[K').filter(Boolean);
    assert.deepEqual(draws.slice(0, 2), ['nspawn-runner: image x: downloading (0:00)', 'nspawn-runner: image x: unpacking (0:01)']);
    assert.ok(draws.every((line) => line.length <= 49), 'never wider than the terminal');
    assert.equal(draws[2], 'nspawn-runner: image x: unpacking, a very long d…');
    assert.match(written, /nspawn-runner: image x: configuring \(1:02\)\r\x1b\[K$/, 'cleared at the end');
    assert.doesNotMatch(written, /\n/);
    const [log] = readdirSync(`${dir}/logs`);
    assert.match(log!, /^\d{8}T\d{6}Z-create\.log$/);
    const text = readFileSync(`${dir}/logs/${log}`, 'utf8');
    assert.match(text, /^I: Unpacking libc6\.\.\.\nI: Unpacking bash\.\.\.$/m);
    assert.match(text, /^# phase: configuring$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** debootstrap and ansible-playbook stand-ins: their kind of output, a tiny tree, a failure on demand. */
function writeStandIns(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/debootstrap`, `#!/bin/sh
eval "target=\\\${$#}"
case "$*" in *fail-suite*) for i in $(seq 1 30); do echo "E: line $i of a failing bootstrap"; done; exit 1;; esac
echo "I: Retrieving InRelease"
for p in libc6 bash python3.11; do echo "I: Retrieving $p 1.0"; echo "I: Validating $p 1.0"; done
echo "I: Installing core packages..."
for p in libc6 bash python3.11; do echo "I: Unpacking $p..."; done
sleep 1
echo "I: Configuring required packages..."
for p in libc6 bash python3.11; do echo "I: Configuring $p..."; done
sleep 1
mkdir -p "$target/bin" "$target/usr/bin" "$target/etc" && cp /bin/busybox "$target/bin/" && ln -s busybox "$target/bin/sh"
echo "I: Base system installed successfully."
`);
  writeFileSync(`${dir}/ansible-playbook`, `#!/bin/sh
if [ "$1" = --list-tasks ]; then printf '\\nplaybook: x\\n\\n  play #1 (all): all\\tTAGS: []\\n    tasks:\\n      first\\tTAGS: []\\n      second\\tTAGS: []\\n'; exit 0; fi
printf 'PLAY [all] ***\\n\\nTASK [Gathering Facts] ***\\nok: [t]\\n\\nTASK [first] ***\\nchanged: [t]\\n\\nTASK [second] ***\\nok: [t]\\n'
sleep 1
printf 'PLAY RECAP ***\\nt : ok=3 changed=1\\n'
`);
  chmodSync(`${dir}/debootstrap`, 0o755);
  chmodSync(`${dir}/ansible-playbook`, 0o755);
}

function run(argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, cwd: '/' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('progress of chroot-create, maintenance and sample-job', () => {
  const work = mkdtempSync(`${tmpdir()}/nsr-progress-`);
  const state = `${work}/state`;
  const env = { PATH: `${work}/bin:${process.env.PATH}`, SYSTEM_FAILURE_EXIT_CODE: String(systemFailure) };
  before(() => {
    writeStandIns(`${work}/bin`);
    mkdirSync(state);
    for (const name of ['piped', 'live']) {
      writeFileSync(`${state}/${name}.yaml`, '- hosts: all\n  vars:\n    nspawn_runner_chroot_suite: stable\n  tasks:\n    - name: first\n      command: "true"\n');
    }
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const logOf = (name: string): string => {
    const dir = `${state}/.images/${name}/logs`;
    const [file] = readdirSync(dir);
    return readFileSync(`${dir}/${file}`, 'utf8');
  };

  test('on a pipe: one plain line per phase, the tools\' output only in the log file', async () => {
    const result = await run([executable, '--root', state, 'chroot-create', '--suite', 'stable', 'piped'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /\r|\x1b/);
    const lines = result.stderr.trim().split('\n');
    assert.deepEqual(lines.slice(0, 5), [
      'nspawn-runner: image piped: debootstrap stable',
      'nspawn-runner: image piped: downloading',
      'nspawn-runner: image piped: unpacking',
      'nspawn-runner: image piped: configuring',
      `nspawn-runner: image piped: playbook ${state}/piped.yaml`,
    ]);
    assert.match(lines[5]!, /^nspawn-runner: image piped: running the playbook$/);
    assert.match(lines[6]!, /^nspawn-runner: image piped: version \S+ made in \d+:\d\d$/);
    assert.doesNotMatch(result.stderr, /I: Retrieving|TASK \[/);
    const log = logOf('piped');
    assert.match(log, /^I: Retrieving python3\.11 1\.0$/m);
    assert.match(log, /^TASK \[second\] \*\*\*$/m);
  });

  test('on a pseudo-terminal: one live line with counters and tasks, redrawn in place', async () => {
    const result = await run(['script', '-qefc', `${executable} --root ${state} chroot-create --suite stable live`, '/dev/null'], env);
    assert.equal(result.code, 0, result.stdout);
    assert.match(result.stdout, /\r\x1b\[Knspawn-runner: image live: unpacking, 3\/3 packages \(\d+:\d\d\)/);
    assert.match(result.stdout, /\r\x1b\[Knspawn-runner: image live: running the playbook, task 3\/3: second \(\d+:\d\d\)/);
    assert.match(result.stdout, /\r\x1b\[Knspawn-runner: image live: version \S+ made in \d+:\d\d\r?\n/, 'the live line ends in a plain summary');
    assert.doesNotMatch(result.stdout, /nspawn-runner: image live: downloading\r?\n/, 'no phase gets a line of its own');
    assert.match(logOf('live'), /^I: Configuring bash\.\.\.$/m);
  });

  test('a failure prints where the full output is, and its last 20 lines', async () => {
    const result = await run([executable, '--root', state, 'chroot-create', '--suite', 'fail-suite', 'failing'], env);
    assert.equal(result.code, systemFailure);
    const path = /full output: (\S+\.log); its last 20 lines:/.exec(result.stderr)?.[1];
    assert.ok(path, result.stderr);
    assert.match(path, new RegExp(`^${state}/\\.images/failing/logs/`));
    assert.match(result.stderr, /^ {2}E: line 11 of a failing bootstrap\n(.*\n){18} {2}E: line 30 of a failing bootstrap$/m);
    assert.doesNotMatch(result.stderr, /line 10 of/);
    assert.equal(readFileSync(path, 'utf8').match(/^E: line \d+ of a failing bootstrap$/gm)?.length, 30);
  });

  test('chroot-maintenance shows the same progress', async () => {
    const result = await run([executable, '--root', state, 'chroot-maintenance', 'piped'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /^nspawn-runner: image piped: copying \S+$/m);
    assert.match(result.stderr, /^nspawn-runner: image piped: running the playbook$/m);
    assert.equal(readdirSync(`${state}/.images/piped/logs`).filter((name) => name.endsWith('-update.log')).length, 1);
  });

  test('sample-job shows it while it creates its first image', async () => {
    const result = await runner(['--root', state, 'sample-job', '--image', 'sample', '--suite', 'stable'], { env });
    assert.match(result.stderr, /^nspawn-runner: image sample: debootstrap stable\nnspawn-runner: image sample: downloading\n/m);
    assert.match(result.stderr, /^nspawn-runner: image sample: version \S+ made in/m);
    assert.doesNotMatch(result.stderr, /I: Retrieving/);
  });
});

describe('progress of chroot-create --convert', () => {
  let scratch: ScratchFilesystem | undefined;
  before(() => {
    scratch = mountScratchBtrfs('1G');
  });
  after(() => scratch?.dispose());

  test('a plain image becomes a subvolume, with a phase line and a log file', async () => {
    makeBusyboxImage(`${scratch!.mountPoint}/plain`);
    const result = await runner(['--root', scratch!.mountPoint, 'chroot-create', '--convert', 'plain']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /^nspawn-runner: image plain: copying image plain into a subvolume \(reflinks, no data is duplicated\)$/m);
    assert.match(result.stderr, /^nspawn-runner: image plain: converted in \d+:\d\d$/m);
    assert.equal(readdirSync(`${scratch!.mountPoint}/.images/plain/logs`).length, 1);
  });
});
