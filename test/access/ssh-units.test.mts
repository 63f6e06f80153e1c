// The ssh-executor units for real: installed in a booted systemd test host,
// reached with a real ssh client from outside, two connections at once.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { ensureSshImage, sshImage, sshRoot } from '../support/images.mts';
import { innerRoot, innerScripts, repoRoot, SystemdTestHost } from '../support/systemd-host.mts';

describe('ssh-units in a systemd host', () => {
  const host = new SystemdTestHost({ bindDebianImage: false, images: { [sshImage]: `${sshRoot}/${sshImage}` } });
  const port = 20000 + (process.pid % 10000);
  const socket = `nspawn-runner-ssh-${sshImage}.socket`;
  before(async () => {
    await ensureSshImage();
    await host.boot();
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', `${host.scripts}/id`]);
    copyFileSync(`${host.scripts}/id.pub`, `${host.scripts}/authorized_keys`);
  });
  after(() => host.dispose());

  function ssh(command: string): Promise<{ code: number; out: string }> {
    return new Promise((resolve) => {
      const child = spawn('ssh', ['-F', '/dev/null', '-i', `${host.scripts}/id`, '-p', String(port), '-o', 'BatchMode=yes',
        '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', 'build@127.0.0.1', command],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => { out += chunk; });
      child.stderr.on('data', (chunk: Buffer) => { out += chunk; });
      child.on('close', (code) => resolve({ code: code ?? -1, out }));
    });
  }

  test('every connection gets its own machine, gone when it closes', async () => {
    const written = await host.exec([`${repoRoot}/bin/nspawn-runner`, '--root', innerRoot, 'ssh-units', '--port', String(port),
      '--user', 'build', '--authorized-keys', `${innerScripts}/authorized_keys`, sshImage]);
    assert.equal(written.code, 0, written.stderr);
    assert.equal((await host.exec(['systemctl', 'daemon-reload'])).code, 0);
    const started = await host.exec(['systemctl', 'start', socket]);
    assert.equal(started.code, 0, started.stderr);

    const during = new Promise<string>((resolve) => setTimeout(async () =>
      resolve((await host.exec(['machinectl', 'list', '--no-legend'])).stdout), 1500));
    const [first, second] = await Promise.all([
      ssh('hostname; echo mine > ~/file; sleep 3; cat ~/file'),
      ssh('hostname; sleep 3; cat ~/file 2>/dev/null || echo no file'),
    ]);
    assert.equal(first.code, 0, first.out);
    assert.equal(second.code, 0, second.out);
    assert.notEqual(first.out.split('\n')[0], second.out.split('\n')[0], 'two machines');
    assert.match(first.out, /mine/);
    assert.match(second.out, /no file/);
    assert.equal((await during).split('\n').filter((line) => line.startsWith('ssh-')).length, 2, 'both registered with machined');

    const next = await ssh('cat ~/file 2>/dev/null || echo no file');
    assert.match(next.out, /no file/);
    const deadline = Date.now() + 10_000;
    let machines = '';
    do {
      machines = (await host.exec(['machinectl', 'list', '--no-legend'])).stdout.trim();
    } while (machines !== '' && Date.now() < deadline && (await new Promise((resolve) => setTimeout(resolve, 100)), true));
    assert.equal(machines, '', 'no machine outlives its connection');
    await host.exec(['systemctl', 'stop', socket]);
  });
});
