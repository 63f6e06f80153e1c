// Build shells for people, through real sudo as an unprivileged user, with
// the sudoers rules the README documents.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { buildShellArgs, invokingUserName, lookupUser, shellMachineName } from '../../lib/access/shell.mts';
import { debianImage, debianRoot, ensureDebianImage } from '../support/images.mts';
import { executable } from '../support/runner.mts';

const user = 'nsrtest';
const sudoers = '/etc/sudoers.d/nspawn-runner-test';

test('shell argv: the wrapper decides every option, the command comes after "--"', () => {
  const person = { name: 'ann', uid: 1000, gid: 1000, home: '/home/ann', shell: '/bin/bash' };
  const base = { imagePath: '/state/bookworm', user: person, cwd: '/home/ann/src', bind: 'home' as const, command: [], machine: 'shell-ann-1', interactive: false };
  const argv = buildShellArgs(base);
  assert.deepEqual(argv.slice(-3), ['--', '/bin/bash', '-l']);
  assert.equal(argv[0], 'unshare', 'nspawn runs in a mount namespace of its own');
  assert.equal(argv[argv.indexOf('sh') + 1], 'systemd-nspawn', 'the sh of the prefix execs nspawn with the rest as "$@"');
  for (const flag of ['--volatile=overlay', '--bind-ro=/etc/passwd', '--bind-ro=/etc/group', '--bind=/home/ann', '--user=ann', '--chdir=/home/ann/src', '--console=pipe']) {
    assert.ok(argv.includes(flag), flag);
  }
  assert.ok(buildShellArgs({ ...base, cwd: '/opt', command: ['make'] }).includes('--chdir=/home/ann'), 'outside home: start in home');
  assert.ok(buildShellArgs({ ...base, bind: 'cwd', cwd: '/srv/ann' }).includes('--bind=/srv/ann'));
  assert.ok(buildShellArgs({ ...base, personality: 'x86' }).includes('--personality=x86'));
  assert.ok(!buildShellArgs({ ...base, term: 'xterm;rm' }).some((arg) => arg.startsWith('--setenv')), 'odd TERM dropped');
  assert.deepEqual(buildShellArgs({ ...base, command: ['--bind=/:/host'] }).slice(-2), ['--', '--bind=/:/host']);
  assert.equal(invokingUserName({ SUDO_USER: 'ann' }, undefined), 'ann');
  assert.throws(() => invokingUserName({ SUDO_USER: 'ann' }, 'root'), /root only/);
  assert.equal(invokingUserName({}, undefined), 'root');
  assert.equal(lookupUser('ann', 'root:x:0:0::/root:/bin/sh\nann:x:1000:1000:Ann:/home/ann:/bin/zsh\n').shell, '/bin/zsh');
  assert.equal(shellMachineName('Ann.B_c', 42), 'shell-ann-b-c-42');
});

/** Runs `sudo -n nspawn-runner ARGS` as the test user from its home. */
function asUser(args: string[]): Promise<{ code: number; out: string; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('/usr/sbin/runuser', ['-u', user, '--', 'sudo', '-n', ...args], {
      cwd: `/home/${user}`, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin', HOME: `/home/${user}` },
    });
    let out = '';
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { out += chunk; stdout += chunk; });
    child.stderr.on('data', (chunk: Buffer) => { out += chunk; stderr += chunk; });
    child.on('close', (code) => resolve({ code: code ?? -1, out, stdout, stderr }));
  });
}

describe('shell through sudo', () => {
  before(async () => {
    await ensureDebianImage();
    try {
      execFileSync('id', [user], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', user]);
    }
    const rules = [
      `Defaults!${executable} env_reset, !setenv`,
      `${user} ALL=(root) NOPASSWD: NOSETENV: ${executable} --root=${debianRoot} shell *`,
      `${user} ALL=(root) NOPASSWD: NOSETENV: ${executable} shell *`,
      '',
    ].join('\n');
    writeFileSync(`${sudoers}.tmp`, rules, { mode: 0o440 });
    execFileSync('visudo', ['-cqf', `${sudoers}.tmp`]);
    execFileSync('mv', [`${sudoers}.tmp`, sudoers]);
  });
  after(() => {
    rmSync(sudoers, { force: true });
    for (const name of ['kept', 'evil']) rmSync(`/home/${user}/${name}`, { recursive: true, force: true });
  });

  const shell = (...args: string[]) => asUser([executable, `--root=${debianRoot}`, 'shell', ...args]);

  test('the user is itself inside, and the exit code passes through', async () => {
    const result = await shell(debianImage, '--', 'sh', '-c', 'id -un; pwd; exit 7');
    assert.equal(result.code, 7, result.out);
    assert.match(result.out, /^nsrtest\n\/home\/nsrtest\n/);
  });

  test('the command\'s stdout and stderr reach the user unchanged, nspawn\'s own noise does not', async () => {
    const result = await shell(debianImage, '--', 'sh', '-c', 'echo to-out; echo to-err >&2; exit 3');
    assert.equal(result.code, 3, result.out);
    assert.equal(result.stdout, 'to-out\n');
    // On hosts whose /run is no tmpfs, nspawn said "Attempted to remove disk file system under
    // /run/systemd/nspawn/propagate/..." on every exit.
    assert.equal(result.stderr, 'to-err\n');
  });

  test('writes in the home persist, writes elsewhere vanish', async () => {
    const marker = `gone-${process.pid}`;
    const result = await shell(debianImage, '--', 'sh', '-c', `echo built > ~/kept && touch /tmp/${marker} && ls /tmp/${marker}`);
    assert.equal(result.code, 0, result.out);
    assert.equal(statSync(`/home/${user}/kept`).uid, Number(execFileSync('id', ['-u', user], { encoding: 'utf8' })));
    assert.equal(existsSync(`/tmp/${marker}`), false);
    assert.equal(existsSync(`${debianRoot}/${debianImage}/tmp/${marker}`), false);
  });

  test('hostile image names, nspawn options, other users and untrusted trees are refused', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['../x'], /invalid image name/],
      [['--bind-ro=/:/host', debianImage], /unknown option --bind-ro/],
      [['--user', 'root', debianImage], /--user is for root only/],
      [[debianImage, 'extra'], /put the command after "--"/],
    ];
    for (const [args, message] of cases) {
      const result = await shell(...args);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.match(result.out, message);
    }
    // A state directory of the user's own making is not trusted.
    mkdirSync(`/home/${user}/evil/${debianImage}`, { recursive: true });
    execFileSync('chown', ['-R', `${user}:`, `/home/${user}/evil`]);
    const evil = await asUser([executable, 'shell', `--root=/home/${user}/evil`, debianImage]);
    assert.notEqual(evil.code, 0);
    assert.match(evil.out, /is not trusted/);
    // sudo itself refuses variables on its command line (NOSETENV).
    const env = await asUser([`NSPAWN_RUNNER_ROOT=/home/${user}/evil`, executable, 'shell', debianImage]);
    assert.notEqual(env.code, 0);
  });
});
