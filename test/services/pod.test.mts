// A job's pod on the direct host, without gitlab-runner: names resolve when
// the host's resolver sits on its loopback (systemd-resolved), an offline pod
// with network: private, services refused under private_users, and
// status listing services under their job.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { StateFixture } from '../support/fixture.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { buildFailure, executable, runner } from '../support/runner.mts';

/** Answers every A query with 10.9.8.7, on 127.0.0.53:53 as systemd-resolved's stub does. */
const fakeResolver = `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.53', 53))
print('ready', flush=True)
while True:
    data, peer = s.recvfrom(512)
    i = 12
    while data[i]: i += data[i] + 1
    question = data[12:i + 5]
    qtype = struct.unpack('>H', data[i + 1:i + 3])[0]
    answer = b'\\xc0\\x0c' + struct.pack('>HHIH', 1, 1, 60, 4) + bytes([10, 9, 8, 7]) if qtype == 1 else b''
    s.sendto(data[:2] + b'\\x81\\x80' + struct.pack('>HHHH', 1, 1 if answer else 0, 0, 0) + question + answer, peer)
`;

describe('a job\'s pod (direct host)', () => {
  let state: StateFixture;
  let work: string;
  let resolver: ChildProcess | undefined;

  const jobFile = (name: string, services: unknown[]): string => {
    writeFileSync(`${work}/${name}.json`, JSON.stringify({ image: { name: 'busybox' }, variables: [], services }));
    return `${work}/${name}.json`;
  };
  const web = (port: number) => ({ name: 'busybox', alias: 'web', command: ['httpd', '-f', '-p', String(port), '-h', '/etc'], ports: [{ number: port }] });

  before(async () => {
    state = await StateFixture.withBusybox();
    work = mkdtempSync(`${tmpdir()}/nsr-pod-`);
  });
  after(async () => {
    resolver?.kill();
    await state?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the host\'s resolver on its loopback (127.0.0.53) answers the pod through pasta', async () => {
    resolver = spawn('python3', ['-c', fakeResolver], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      resolver!.stdout!.once('data', () => resolve());
      resolver!.once('exit', (code) => reject(new Error(`the fake resolver exited with ${code}`)));
    });
    writeFileSync(`${work}/resolv.conf`, 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.test\n');
    // prepare (and the pasta it starts) sees that resolv.conf; the host keeps its own.
    const prepared = await runner(['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
      `${work}/resolv.conf`, executable, '--root', state.root, 'prepare', '--id', 'pod-dns', 'busybox'],
    { executable: 'unshare', env: { JOB_RESPONSE_FILE: jobFile('dns', [web(8080)]) } });
    assert.equal(prepared.code, 0, prepared.stderr);
    const looked = await state.stage('pod-dns', 'build_script', 'cat /etc/resolv.conf; nslookup ci.example.test; wget -qO- http://web:8080/os-release | grep -c PRETTY');
    assert.equal(looked.code, 0, looked.stderr);
    assert.match(looked.stdout, /^nameserver 169\.254\.1\.1$/m);
    assert.match(looked.stdout, /^search example\.test$/m);
    assert.match(looked.stdout, /Address: 10\.9\.8\.7/);
    assert.equal((await state.cleanup('pod-dns')).code, 0);
    assert.deepEqual(leftoversOf(state.root, ['pod-dns']), { mounts: [], processes: [], jobDirs: [] });
  });

  test('network: private gives an offline pod in which services still serve; status lists them under the job', async () => {
    writeFileSync(`${work}/private.conf`, 'network: private\n');
    const env = { NSPAWN_RUNNER_CONFIG: `${work}/private.conf`, JOB_RESPONSE_FILE: jobFile('private', [web(8080)]) };
    assert.equal((await state.prepare('pod-private', 'busybox', { env })).code, 0);
    const stage = await state.stage('pod-private', 'build_script', 'ip -o link | grep -v " lo:" | wc -l; wget -qO- http://web:8080/os-release | grep -c PRETTY');
    assert.equal(stage.code, 0, stage.stderr);
    assert.equal(stage.stdout, '0\n1\n', 'loopback only, and the service answers');
    const status = await state.run(['status']);
    assert.match(status.stdout, /^pod-private\tbusybox\t.*\trunning\trun-pod-private\t-$/m);
    assert.match(status.stdout, /^pod-private\tbusybox\t.*\tservice:running\trun-pod-private-s0\tweb,busybox$/m);
    assert.equal((await state.cleanup('pod-private')).code, 0);
    assert.deepEqual(leftoversOf(state.root, ['pod-private']), { mounts: [], processes: [], jobDirs: [] });
  });

  test('private_users refuses services as the job\'s fault, naming them, and leaves nothing', async () => {
    writeFileSync(`${work}/users.conf`, 'private_users: true\n');
    const env = { NSPAWN_RUNNER_CONFIG: `${work}/users.conf`, JOB_RESPONSE_FILE: jobFile('users', [web(80)]) };
    const prepared = await state.prepare('pod-users', 'busybox', { env });
    assert.equal(prepared.code, buildFailure, prepared.stderr);
    assert.match(prepared.stderr, /services \(busybox\) cannot run on this runner: it sets private_users/);
    assert.deepEqual(leftoversOf(state.root, ['pod-users']), { mounts: [], processes: [], jobDirs: [] });
  });
});
