// ssh-executor mode: one throw-away machine per ssh connection. Here the
// session command is driven by a real ssh client through ProxyCommand (the
// same stdin/stdout contract as the socket unit); the socket units
// themselves are tested in the booted systemd test host.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { buildSshSessionArgs, buildSshUnits } from '../../lib/access/ssh-units.mts';
import { ensureSshImage, sshImage, sshRoot } from '../support/images.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { executable } from '../support/runner.mts';

test('ssh units: a socket with Accept=yes and a templated service running ssh-session', () => {
  const units = buildSshUnits({ image: 'ssh-bookworm', port: 2222, executable: '/opt/nsr/bin/nspawn-runner', globalArgs: ['--root=/srv/nsr'], user: 'build', authorizedKeys: '/etc/nspawn-runner/keys' });
  assert.deepEqual(Object.keys(units), ['nspawn-runner-ssh-ssh-bookworm.socket', 'nspawn-runner-ssh-ssh-bookworm@.service']);
  const [socket, service] = Object.values(units);
  assert.match(socket!, /^ListenStream=2222$/m);
  assert.match(socket!, /^Accept=yes$/m);
  assert.match(service!, /^ExecStart=\/opt\/nsr\/bin\/nspawn-runner --root=\/srv\/nsr ssh-session --user build --authorized-keys \/etc\/nspawn-runner\/keys ssh-bookworm$/m);
  assert.match(service!, /^StandardInput=socket$/m);
  const argv = buildSshSessionArgs({ imagePath: '/srv/nsr/ssh-bookworm', machine: 'ssh-x-1', user: { name: 'build', uid: 1000, gid: 1000, home: '/home/build', shell: '/bin/bash' }, authorizedKeys: '/k', register: false });
  for (const flag of ['--volatile=overlay', '--tmpfs=/home/build:mode=0700,uid=1000,gid=1000', '--bind-ro=/k:/etc/ssh/nspawn-runner-authorized-keys', '--console=pipe']) {
    assert.ok(argv.includes(flag), flag);
  }
});

describe('ssh sessions on real machines', () => {
  let keys: string;
  before(async () => {
    await ensureSshImage();
    keys = mkdtempSync(`${tmpdir()}/nsr-ssh-`);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', `${keys}/id`]);
    copyFileSync(`${keys}/id.pub`, `${keys}/authorized_keys`);
  });
  after(() => rmSync(keys, { recursive: true, force: true }));

  function session(command: string): Promise<{ code: number; out: string }> {
    const proxy = `${executable} --root=${sshRoot} ssh-session --user build --authorized-keys ${keys}/authorized_keys ${sshImage}`;
    return new Promise((resolve) => {
      const child = spawn('ssh', ['-F', '/dev/null', '-i', `${keys}/id`, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
        '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', `ProxyCommand=${proxy}`, 'build@machine', command],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => { out += chunk; });
      child.on('close', (code) => resolve({ code: code ?? -1, out }));
    });
  }

  test('two connections at once get two machines; a file written in one is not seen by the next; nothing is left', async () => {
    const [first, second] = await Promise.all([
      session('hostname; id -un; echo mine > ~/file; sleep 1; cat ~/file'),
      session('hostname; id -un; cat ~/file 2>/dev/null || echo no file; sleep 1'),
    ]);
    assert.equal(first.code, 0, first.out);
    assert.equal(second.code, 0, second.out);
    const [hostA, userA] = first.out.split('\n');
    const [hostB, userB] = second.out.split('\n');
    assert.notEqual(hostA, hostB);
    assert.deepEqual([userA, userB], ['build', 'build']);
    assert.match(first.out, /mine/);
    assert.match(second.out, /no file/);
    const next = await session('cat ~/file 2>/dev/null || echo no file; ls /tmp');
    assert.match(next.out, /^no file\n$/);
    assert.deepEqual(leftoversOf(sshRoot).processes, [], 'every session machine is gone');
  });
});
