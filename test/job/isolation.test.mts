// Opt-in isolation per runner: private network, user namespaces, an image
// allowlist; and secrets that must not outlive the job.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { mountScratchBtrfs, type ScratchFilesystem } from '../support/btrfs.mts';
import { StateFixture } from '../support/fixture.mts';
import { makeBusyboxImage } from '../support/images.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { buildFailure, runner } from '../support/runner.mts';

describe('isolation', () => {
  let scratch: ScratchFilesystem;
  let state: StateFixture;
  let configDir: string;
  const withConfig = (name: string, text: string) => {
    writeFileSync(`${configDir}/${name}.conf`, text);
    return { env: { NSPAWN_RUNNER_CONFIG: `${configDir}/${name}.conf` } };
  };
  before(async () => {
    scratch = mountScratchBtrfs();
    state = await StateFixture.withBusybox([], scratch.mountPoint);
    configDir = mkdtempSync(`${tmpdir()}/nsr-conf-`);
  });
  after(async () => {
    try {
      await state?.dispose();
    } finally {
      scratch?.dispose();
      if (configDir) rmSync(configDir, { recursive: true, force: true });
    }
  });

  test('private network: only loopback, and parallel jobs bind the same port', async () => {
    const config = withConfig('private', 'network: private\n');
    const jobs = ['net-a', 'net-b'];
    for (const id of jobs) assert.equal((await state.prepare(id, 'busybox', config)).code, 0);
    const results = await Promise.all(jobs.map((id) => state.stage(id, 'build_script',
      '(nc -l -p 8080 >/dev/null 2>&1 &); sleep 0.3; netstat -ltn | grep -c ":8080 "; ls /sys/class/net', config)));
    for (const result of results) {
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^1\nlo\n$/, 'listening, and no interface but lo');
    }
    for (const id of jobs) assert.equal((await state.cleanup(id)).code, 0);
  });

  test('user namespaces: container root is not host root', async () => {
    const config = withConfig('users', 'private_users: true\n');
    assert.equal((await state.prepare('users', 'busybox', config)).code, 0);
    const result = await state.stage('users', 'build_script', 'id -u; cat /proc/self/uid_map; touch /mine; ls -ln /mine', config);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const [uid, map] = result.stdout.trim().split('\n');
    assert.equal(uid, '0');
    const [inside, outside] = map!.trim().split(/\s+/).map(Number);
    assert.equal(inside, 0);
    assert.ok(outside! >= 65536, `root maps to host uid ${outside}`);
    assert.equal((await state.cleanup('users')).code, 0);
  });

  for (const backend of ['overlay', 'tmpfs'] as const) {
    test(`user namespaces on ${backend} storage: over a uid-shifted copy of the image, made once`, async () => {
      const config = withConfig('users', 'private_users: true\n');
      const plain = mkdtempSync(`${tmpdir()}/nsr-users-`);
      try {
        makeBusyboxImage(`${plain}/busybox`);
        const prepare = (id: string) => runner(['--root', plain, '--backend', backend, 'prepare', '--id', id, 'busybox'], config);
        const [first, second] = [await prepare('u1'), await prepare('u2')];
        assert.equal(first.code, 0, first.stderr);
        assert.equal(second.code, 0, second.stderr);
        assert.match(first.stderr, /making the uid-shifted copy/);
        assert.doesNotMatch(second.stderr, /making the uid-shifted copy/, 'made once per image version');
        writeFileSync(`${state.scripts}/users-${backend}`, `id -u; cat /proc/self/uid_map; touch /mine ${plain}/.cache/from-job; ls -ln /bin/busybox\n`);
        const result = await runner(['--root', plain, 'run', '--id', 'u1', `${state.scripts}/users-${backend}`, 'build_script'], config);
        assert.equal(result.code, 0, result.stdout + result.stderr);
        const [uid, map, busybox] = result.stdout.trim().split('\n');
        assert.equal(uid, '0');
        const [inside, outside] = map!.trim().split(/\s+/).map(Number);
        assert.equal(inside, 0);
        assert.ok(outside! >= 0x80000, `root maps to host uid ${outside}`);
        assert.match(busybox!, /^\S+\s+\d+\s+0\s+0\s/, 'the image\'s files belong to root inside');
        assert.equal(statSync(`${plain}/.cache/from-job`).uid, 0, 'the shared cache is idmapped: written as the host\'s root');
        assert.equal(statSync(`${plain}/busybox/bin/busybox`).uid, 0, 'the image itself is untouched');
        for (const id of ['u1', 'u2']) assert.equal((await runner(['--root', plain, 'cleanup', '--id', id], config)).code, 0);
        assert.deepEqual(leftoversOf(plain), { mounts: [], processes: [], jobDirs: [] });
        // The copy goes once its image does.
        rmSync(`${plain}/busybox`, { recursive: true });
        assert.equal((await runner(['--root', plain, 'gc'], config)).code, 0);
        assert.deepEqual(readdirSync(`${plain}/.users`), []);
      } finally {
        rmSync(plain, { recursive: true, force: true });
      }
    });
  }

  test('allowed_images: other images are refused, listed ones run', async () => {
    const config = withConfig('allow', 'allowed_images: [busy*]\n');
    const refused = await state.run(['prepare', '--id', 'allow'], { env: { ...config.env, CUSTOM_ENV_CI_JOB_IMAGE: 'debian:bookworm' } });
    assert.equal(refused.code, buildFailure);
    assert.match(refused.stderr, /image "bookworm" is not allowed on this runner; allowed: busy\*/);
    assert.equal((await state.prepare('allow', 'busybox', config)).code, 0);
    assert.equal((await state.cleanup('allow')).code, 0);
  });

  test('a secret used by a job is gone from the host after cleanup', async () => {
    const secret = `glpat-${Math.random().toString(36).slice(2)}${Date.now()}`;
    assert.equal((await state.prepare('secret')).code, 0);
    const used = await state.stage('secret', 'build_script', `export TOKEN=${secret}\necho "$TOKEN" > /root/.token; echo "$TOKEN" > /tmp/t; echo used`);
    assert.equal(used.code, 0);
    assert.doesNotMatch(used.stderr, new RegExp(secret));
    assert.equal((await state.cleanup('secret')).code, 0);
    const found = execFileSync('grep', ['-rl', '--', secret, state.root, state.scripts].filter(Boolean), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .toString().split('\n').filter((path) => path && !path.startsWith(state.scripts));
    assert.deepEqual(found, []);
  });
});
