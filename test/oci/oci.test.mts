// OCI images against a real registry on loopback (Debian's docker-registry),
// through prepare, run, cleanup, gc and oci-list as gitlab-runner calls them:
// images without bash, with whiteouts, with Env and WorkingDir; one pull for
// concurrent jobs; pull policies; htpasswd authentication; and the bad cases:
// each fails with one clear line and the right exit code, and leaves nothing.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { isSubvolume } from '../../lib/btrfs.mts';
import { mountScratchBtrfs, type ScratchFilesystem } from '../support/btrfs.mts';
import { StateFixture } from '../support/fixture.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { buildTestImages, pushRawLayerImage, tarOf, type PushedImage, type TestImages } from '../support/oci-images.mts';
import { Registry } from '../support/registry.mts';
import { buildFailure, executable, runner, systemFailure, type RunnerResult } from '../support/runner.mts';

const user = { user: 'ci', password: 'registry-s3cret-pw' };

/** The state directory's OCI store: what must be empty after a failure. */
function storeEntries(root: string, sub: string): string[] {
  try {
    return readdirSync(`${root}/.oci/${sub}`);
  } catch {
    return [];
  }
}

/** Every file under root whose name is name (auth files must never stay). */
function findFiles(root: string, name: string): string[] {
  return readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((path) => path === name || path.endsWith(`/${name}`));
}

function configFile(dir: string, text: string): string {
  const path = `${dir}/nspawn-runner-${Math.random().toString(36).slice(2)}.conf`;
  writeFileSync(path, text);
  return path;
}

const ociConfig = (extra = '') => `oci:\n  enabled: true\n  insecure_registries: ["127.0.0.1:*"]\n${extra}`;

describe('OCI images from a loopback registry', () => {
  let registry: Registry;
  let secured: Registry;
  let images: TestImages;
  let privateImage: PushedImage;
  let state: StateFixture;
  let work: string;
  let config: string;
  const jobs = new Set<string>();

  before(async () => {
    work = mkdtempSync(`${tmpdir()}/nsr-oci-`);
    registry = await Registry.start();
    secured = await Registry.start(user);
    images = buildTestImages(registry);
    writeFileSync(`${work}/push-auth.json`, secured.authConfig());
    privateImage = buildTestImages(secured, 'private', `${work}/push-auth.json`).busybox;
    config = configFile(work, ociConfig('  allowed_pull_policies: [always, if-not-present, never]\n'));
    state = await StateFixture.withBusybox(['--config', config]);
  });

  after(async () => {
    for (const id of jobs) await state?.run(['cleanup', '--id', id]);
    await state?.dispose();
    await registry?.close();
    await secured?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** prepare as gitlab-runner runs it: the image from the job (JOB_RESPONSE_FILE), the id from the environment. */
  function prepare(id: string, image: Record<string, unknown>, options: { env?: NodeJS.ProcessEnv; fixture?: StateFixture; variables?: Array<{ key: string; value: string }> } = {}): Promise<RunnerResult> {
    const file = `${work}/job-${id}.json`;
    writeFileSync(file, JSON.stringify({ id, image, variables: options.variables ?? [] }));
    jobs.add(id);
    return (options.fixture ?? state).run(['prepare'], { env: { JOB_RESPONSE_FILE: file, CUSTOM_ENV_CI_JOB_ID: id, ...options.env } });
  }

  async function cleanup(id: string, fixture = state): Promise<void> {
    const result = await fixture.run(['cleanup', '--id', id]);
    assert.equal(result.code, 0, result.stderr);
    jobs.delete(id);
  }

  test('an image without bash and without /usr runs its stages with sh', async () => {
    const prepared = await prepare('oci-1', { name: images.busybox.reference });
    assert.equal(prepared.code, 0, prepared.stderr);
    assert.match(prepared.stderr, new RegExp(`pulling ${images.busybox.reference}\n`));
    assert.match(prepared.stderr, new RegExp(`unpacking ${images.busybox.reference} \\(${images.busybox.digest}\\)`));
    assert.match(prepared.stderr, new RegExp(`machine run-oci-1 on image ${images.busybox.reference} \\(${images.busybox.digest}\\)`));
    // gitlab-runner's run_exec asks for bash; the image has none.
    const stage = await state.stage('oci-1', 'build_script', 'readlink /proc/$$/exe; cat /etc/os-release; echo "PATH=$PATH"; pwd');
    assert.equal(stage.code, 0, stage.stderr);
    assert.match(stage.stdout, /^\/bin\/busybox$/m);
    assert.match(stage.stdout, /busybox test image/);
    assert.match(stage.stdout, /^PATH=\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m);
    assert.match(stage.stdout, /^\/$/m);
    await cleanup('oci-1');
    assert.deepEqual(leftoversOf(state.root, ['oci-1']), { mounts: [], processes: [], jobDirs: [] });
  });

  test('layers come out right by digest: a deleted file, an opaque directory, a directory replaced by a file', async () => {
    const [repository] = images.layers.reference.split(':1');
    const prepared = await prepare('oci-2', { name: `${repository}@${images.layers.digest}` });
    assert.equal(prepared.code, 0, prepared.stderr);
    const stage = await state.stage('oci-2', 'build_script', [
      'ls /etc/gone 2>/dev/null || echo "gone is gone"',
      'ls /etc/d',
      'cat /srv/thing',
      'cat /opt/keep',
    ].join('\n'));
    assert.equal(stage.code, 0, stage.stderr);
    assert.match(stage.stdout, /^gone is gone$/m);
    assert.match(stage.stdout, /^b$/m);
    assert.doesNotMatch(stage.stdout, /^(a|sub)$/m, 'the opaque directory hides the lower layer\'s entries');
    assert.match(stage.stdout, /^now a file$/m);
    assert.match(stage.stdout, /^kept$/m);
    await cleanup('oci-2');
  });

  test('the image\'s Env reaches every stage and stages start in its WorkingDir', async () => {
    const prepared = await prepare('oci-3', { name: `docker://${images.env.reference}` });
    assert.equal(prepared.code, 0, prepared.stderr);
    for (const stageName of ['get_sources', 'build_script']) {
      const stage = await state.stage('oci-3', stageName, 'pwd; echo "JAVA_HOME=$JAVA_HOME"; hello; echo "PATH=$PATH"');
      assert.equal(stage.code, 0, stage.stderr);
      assert.match(stage.stdout, /^\/work\/dir$/m);
      assert.match(stage.stdout, /^JAVA_HOME=\/opt\/java$/m);
      assert.match(stage.stdout, /^hello from the image's "Env" in \/opt\/java$/m);
      assert.match(stage.stdout, /^PATH=\/opt\/tools\/bin:\/usr\/local\/bin:\/usr\/bin:\/bin$/m);
    }
    await cleanup('oci-3');
  });

  test('a local image comes first, then the name after the last colon, then the registry', async () => {
    const local = await prepare('oci-4', { name: 'busybox' });
    assert.match(local.stderr, /machine run-oci-4 on image busybox \(/);
    await cleanup('oci-4');
    const lastColon = await prepare('oci-4', { name: 'example.com/team:busybox' });
    assert.match(lastColon.stderr, /machine run-oci-4 on image busybox \(/);
    await cleanup('oci-4');
    const forced = await prepare('oci-4', { name: `docker://${images.busybox.reference}` });
    assert.match(forced.stderr, new RegExp(`on image ${images.busybox.reference} \\(sha256:`));
    await cleanup('oci-4');
  });

  test('four jobs starting at once on an uncached image pull and unpack it once', async () => {
    const fresh = pushRawLayerImage(registry, 'test/concurrent:1', tarOf([{ name: 'concurrent', content: `${Date.now()}\n` }]));
    const manifest = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${fresh.reference}`], { encoding: 'utf8' })) as { layers: Array<{ digest: string }> };
    const ids = ['oci-5a', 'oci-5b', 'oci-5c', 'oci-5d'];
    const results = await Promise.all(ids.map((id) => prepare(id, { name: fresh.reference })));
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    assert.equal(results.filter((result) => /pulling /.test(result.stderr)).length, 1, results.map((result) => result.stderr).join('\n'));
    for (const layer of manifest.layers) assert.equal(registry.blobFetches(layer.digest), 1, `layer ${layer.digest} fetched once`);
    assert.deepEqual(storeEntries(state.root, 'staging'), []);
    for (const id of ids) await cleanup(id);
  });

  test('pull policies: never, if-not-present keeps a moved tag\'s old digest, always follows it; the job may ask only for allowed ones', async () => {
    const first = pushRawLayerImage(registry, 'test/moving:1', tarOf([{ name: 'version', content: 'one\n' }]));
    const never = await prepare('oci-6', { name: first.reference, pull_policy: ['never'] });
    assert.equal(never.code, buildFailure, never.stderr);
    assert.match(never.stderr, /is not on this runner, and pull_policy is never/);
    assert.ok(await prepare('oci-6', { name: first.reference }).then((result) => result.code === 0));
    await cleanup('oci-6');
    const second = pushRawLayerImage(registry, 'test/moving:1', tarOf([{ name: 'version', content: 'two\n' }]));
    assert.notEqual(second.digest, first.digest);
    const cached = await prepare('oci-6', { name: first.reference, pull_policy: ['if-not-present'] });
    assert.match(cached.stderr, new RegExp(first.digest));
    assert.doesNotMatch(cached.stderr, /pulling/);
    await cleanup('oci-6');
    const always = await prepare('oci-6', { name: first.reference, pull_policy: ['always'] });
    assert.match(always.stderr, new RegExp(`pulling .*${second.digest}`));
    assert.equal((await state.stage('oci-6', 'build_script', 'cat /version')).stdout, 'two\n');
    await cleanup('oci-6');
    const strict = await StateFixture.withBusybox(['--config', configFile(work, ociConfig('  pull_policy: if-not-present\n'))]);
    try {
      const refused = await prepare('oci-6', { name: first.reference, pull_policy: ['always'] }, { fixture: strict });
      assert.equal(refused.code, buildFailure, refused.stderr);
      assert.match(refused.stderr, /pull_policy always is not allowed on this runner; allowed: if-not-present/);
    } finally {
      jobs.delete('oci-6');
      await strict.dispose();
    }
  });

  test('a private registry: DOCKER_AUTH_CONFIG or the credentials file; a wrong password fails the job and is never shown', async () => {
    const good = secured.authConfig();
    const wrong = secured.authConfig({ user: user.user, password: 'wrong-pa55word' });
    const anonymous = await prepare('oci-7', { name: privateImage.reference });
    assert.equal(anonymous.code, buildFailure, anonymous.stderr);
    assert.match(anonymous.stderr, /access refused by 127\.0\.0\.1:\d+: .*authentication required/);
    const refused = await prepare('oci-7', { name: privateImage.reference }, { variables: [{ key: 'DOCKER_AUTH_CONFIG', value: wrong }] });
    assert.equal(refused.code, buildFailure, refused.stderr);
    assert.match(refused.stderr, /access refused/);
    for (const secret of ['wrong-pa55word', Buffer.from(`${user.user}:wrong-pa55word`).toString('base64')]) assert.ok(!refused.stderr.includes(secret));
    const allowed = await prepare('oci-7', { name: privateImage.reference }, { env: { CUSTOM_ENV_DOCKER_AUTH_CONFIG: good } });
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.ok(!allowed.stderr.includes(user.password));
    await cleanup('oci-7');
    const hostFile = `${work}/host-auth.json`;
    writeFileSync(hostFile, good, { mode: 0o600 });
    const withFile = await StateFixture.withBusybox(['--config', configFile(work, ociConfig(`  credentials_file: ${hostFile}\n`))]);
    try {
      const fromFile = await prepare('oci-7', { name: privateImage.reference }, { fixture: withFile });
      assert.equal(fromFile.code, 0, fromFile.stderr);
      await cleanup('oci-7', withFile);
      assert.deepEqual(findFiles(withFile.root, 'auth.json'), [], 'no auth file is left');
    } finally {
      await withFile.dispose();
    }
    assert.deepEqual(findFiles(state.root, 'auth.json'), [], 'no auth file is left');
  });

  test('a prepare cancelled during a private pull removes the credential before it goes', async () => {
    const image = pushRawLayerImage(secured, 'private/cancelled:1', tarOf([{ name: 'zeros', size: 16 * 1024 * 1024 }]), true, `${work}/push-auth.json`);
    const file = `${work}/job-oci-16.json`;
    writeFileSync(file, JSON.stringify({ image: { name: image.reference }, variables: [{ key: 'DOCKER_AUTH_CONFIG', value: secured.authConfig() }] }));
    jobs.add('oci-16');
    const child = spawn(executable, ['--root', state.root, '--config', config, 'prepare'], {
      env: { ...process.env, JOB_RESPONSE_FILE: file, CUSTOM_ENV_CI_JOB_ID: 'oci-16' }, stdio: 'ignore',
    });
    const umoci = await waitForProcess((argv) => argv[0] === 'umoci' && argv.some((arg) => arg.startsWith(`${state.root}/`)));
    process.kill(umoci, 'SIGSTOP');
    assert.equal(findFiles(`${state.root}/.oci/staging`, 'auth.json').length, 1, 'the credential is on disk while the pull runs');
    // gitlab-runner's cancel: SIGTERM (to the process group; umoci is held here).
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('close', resolve));
    process.kill(umoci, 'SIGKILL');
    assert.deepEqual(findFiles(state.root, 'auth.json'), []);
    await state.run(['cleanup', '--id', 'oci-16']);
    jobs.delete('oci-16');
    // What the cancelled pull left is gc's.
    const gc = await state.run(['gc', '--json']);
    assert.equal((JSON.parse(gc.stdout) as { oci: { staging: string[] } }).oci.staging.length, 1, gc.stderr);
    assert.deepEqual(storeEntries(state.root, 'staging'), []);
  });

  test('bad references and refused images fail the job at once with one line; an unreachable registry fails the runner; nothing is left', async () => {
    const before = storeEntries(state.root, 'images');
    const host = registry.host;
    const cases: Array<[string, number, RegExp]> = [
      [`${host}/test/nosuchrepo:1`, buildFailure, /no such image: .*manifest unknown/],
      [`${host}/test/busybox:nosuchtag`, buildFailure, /no such image/],
      [`${host}/test/Bad:1`, buildFailure, /invalid image reference .*bad path component "Bad"/],
      [`docker://-x/y`, buildFailure, /invalid image reference/],
      [`${host}/test/busybox@sha256:123`, buildFailure, /digest must be sha256/],
      ['127.0.0.1:1/test/busybox:1', systemFailure, /registry 127\.0\.0\.1:1 unreachable: .*connection refused/],
    ];
    for (const [name, code, message] of cases) {
      const result = await prepare('oci-8', { name });
      assert.equal(result.code, code, `${name}: ${result.stderr}`);
      assert.match(result.stderr, message, name);
      assert.equal(result.stderr.trim().split('\n').filter((line) => /error:/.test(line)).length, 1, result.stderr);
    }
    const strict = await StateFixture.withBusybox(['--config', configFile(work,
      `allowed_images: ["${host}/test/busybox:*", "busybox"]\n${ociConfig('  allowed_registries: ["registry.example.com"]\n')}`)]);
    try {
      const image = await prepare('oci-8', { name: images.env.reference }, { fixture: strict });
      assert.equal(image.code, buildFailure);
      assert.match(image.stderr, /image ".*test\/env:1" is not allowed on this runner/);
      const registryRefused = await prepare('oci-8', { name: images.busybox.reference }, { fixture: strict });
      assert.equal(registryRefused.code, buildFailure);
      assert.match(registryRefused.stderr, /registry 127\.0\.0\.1:\d+ is not allowed on this runner; allowed: registry\.example\.com/);
    } finally {
      await strict.dispose();
    }
    jobs.delete('oci-8');
    assert.deepEqual(storeEntries(state.root, 'images'), before);
    assert.deepEqual(storeEntries(state.root, 'staging'), []);
    assert.deepEqual(leftoversOf(state.root, ['oci-8']), { mounts: [], processes: [], jobDirs: [] });
  });

  test('an image without the stage agent\'s programs is refused at prepare, naming them', async () => {
    const noSetsid = pushRawLayerImage(registry, 'test/nosetsid:1', tarOf([{ name: 'bin/.wh.setsid' }, { name: 'bin/.wh.mkfifo' }]));
    const result = await prepare('oci-9', { name: noSetsid.reference });
    assert.equal(result.code, buildFailure, result.stderr);
    assert.match(result.stderr, /cannot run jobs here: it has no setsid, mkfifo \(nspawn-runner's stage agent runs \/bin\/sh with env, setsid and mkfifo/);
    jobs.delete('oci-9');
  });

  test('a blob whose digest does not match is refused and nothing is published', async () => {
    const image = pushRawLayerImage(registry, 'test/corrupt:1', tarOf([{ name: 'corrupt', content: `unique ${Date.now()}\n` }]));
    const manifest = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${image.reference}`], { encoding: 'utf8' })) as { layers: Array<{ digest: string }> };
    const layer = manifest.layers.at(-1)!.digest;
    const blob = registry.blobFile(layer);
    const bytes = readFileSync(blob);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(blob, bytes);
    const result = await prepare('oci-10', { name: image.reference });
    assert.equal(result.code, systemFailure, result.stderr);
    assert.match(result.stderr, /does not match its digest: .*Digest did not match/);
    assert.ok(!existsSync(`${state.root}/.oci/images/${image.digest.replace(':', '-')}`), 'not published');
    assert.ok(!existsSync(`${state.root}/.oci/blobs/sha256/${layer.slice(7)}`), 'the bad blob is not stored');
    assert.deepEqual(storeEntries(state.root, 'staging'), []);
    jobs.delete('oci-10');
  });

  test('a layer that writes outside its root (../, absolute paths, symlinks followed) writes nothing outside the image', async () => {
    const outside = mkdtempSync(`${tmpdir()}/nsr-outside-`);
    try {
      const ups = '../'.repeat(12);
      const image = pushRawLayerImage(registry, 'test/malicious:1', tarOf([
        { name: `${ups}${outside.slice(1)}/dotdot`, content: 'escaped\n' },
        { name: `${outside}/absolute`, content: 'escaped\n' },
        { name: 'abs-link', type: 'symlink', target: outside },
        { name: 'abs-link/through-absolute-symlink', content: 'escaped\n' },
        { name: 'rel-link', type: 'symlink', target: `${ups}${outside.slice(1)}` },
        { name: 'rel-link/through-relative-symlink', content: 'escaped\n' },
        { name: 'host-file', type: 'symlink', target: '/etc/hostname' },
        { name: 'hard', type: 'hardlink', target: 'host-file' },
        { name: 'host-file', content: 'replaced\n' },
      ]));
      const hostname = readFileSync('/etc/hostname', 'utf8');
      const result = await prepare('oci-11', { name: image.reference });
      assert.deepEqual(readdirSync(outside), [], 'nothing written outside the image tree');
      assert.equal(readFileSync('/etc/hostname', 'utf8'), hostname);
      // umoci keeps every entry inside the tree: the image is usable, its escapes land inside it.
      assert.equal(result.code, 0, result.stderr);
      const tree = `${state.root}/.oci/images/${image.digest.replace(':', '-')}/tree`;
      assert.deepEqual(readdirSync(`${tree}${outside}`).sort(), ['absolute', 'dotdot', 'through-absolute-symlink', 'through-relative-symlink']);
      const stage = await state.stage('oci-11', 'build_script', 'cat /host-file');
      assert.equal(stage.stdout, 'replaced\n');
      await cleanup('oci-11');
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  test('a full disk while unpacking is a system failure and leaves no half-unpacked image', async () => {
    const small = mkdtempSync(`${tmpdir()}/nsr-small-`);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24M', '--', 'nsr-small', small]);
    try {
      const fixture = await StateFixture.withBusybox(['--config', config], small);
      try {
        // 64 MiB of zeros: a tiny blob that unpacks to more than the disk holds.
        const image = pushRawLayerImage(registry, 'test/big:1', tarOf([{ name: 'zeros', size: 64 * 1024 * 1024 }]));
        const result = await prepare('oci-12', { name: image.reference }, { fixture });
        assert.equal(result.code, systemFailure, result.stderr);
        assert.match(result.stderr, /unpacking failed, nothing kept: .*no space left on device/);
        assert.deepEqual(storeEntries(fixture.root, 'images'), []);
        assert.deepEqual(storeEntries(fixture.root, 'staging'), []);
        jobs.delete('oci-12');
      } finally {
        await fixture.dispose();
      }
    } finally {
      execFileSync('umount', ['--', small]);
      rmSync(small, { recursive: true, force: true });
    }
  });

  test('a pull killed half-way leaves nothing a later job mistakes for an image; gc removes its remains', async () => {
    const image = pushRawLayerImage(registry, 'test/killed:1', tarOf([{ name: 'zeros', size: 32 * 1024 * 1024 }]));
    const file = `${work}/job-oci-13.json`;
    writeFileSync(file, JSON.stringify({ image: { name: image.reference } }));
    jobs.add('oci-13');
    const child = spawn(executable, ['--root', state.root, '--config', config, 'prepare'], {
      env: { ...process.env, JOB_RESPONSE_FILE: file, CUSTOM_ENV_CI_JOB_ID: 'oci-13' }, stdio: 'ignore', detached: true,
    });
    // Stop the unpack the moment it starts, then kill the whole prepare as a crash would.
    const umoci = await waitForProcess((argv) => argv[0] === 'umoci' && argv.some((arg) => arg.startsWith(`${state.root}/`)));
    process.kill(umoci, 'SIGSTOP');
    process.kill(-child.pid!, 'SIGKILL');
    await new Promise((resolve) => child.once('close', resolve));
    assert.ok(!existsSync(`${state.root}/.oci/images/${image.digest.replace(':', '-')}`), 'not published');
    assert.equal(storeEntries(state.root, 'staging').length, 1, 'the killed pull\'s staging directory');
    await state.run(['cleanup', '--id', 'oci-13']);
    const again = await prepare('oci-13', { name: image.reference });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /pulling/);
    await cleanup('oci-13');
    const gc = await state.run(['gc', '--json']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.equal((JSON.parse(gc.stdout) as { oci: { staging: string[] } }).oci.staging.length, 1);
    assert.deepEqual(storeEntries(state.root, 'staging'), []);
  });

  test('oci-list shows references, digest, size and last use; gc removes images unused for gc_unused_after, never one in use', async () => {
    const listed = await state.run(['oci-list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const rows = JSON.parse(listed.stdout) as Array<{ key: string; digest: string; references: string[]; sizeBytes: number; lastUsed: string }>;
    const env = rows.find((row) => row.digest === images.env.digest)!;
    assert.deepEqual(env.references, [images.env.reference]);
    assert.ok(env.sizeBytes > 1_000_000, 'busybox and more');
    assert.ok(Date.parse(env.lastUsed) > 0);
    const table = await state.run(['oci-list', '--no-size']);
    assert.match(table.stdout, /^REFERENCE\s+DIGEST\s+SIZE\s+LAST USED\s+JOBS$/m);

    // The env image in use, the busybox one not: both "unused" for long by their marks.
    assert.equal((await prepare('oci-14', { name: images.env.reference })).code, 0);
    const old = new Date(Date.now() - 30 * 86400_000);
    for (const row of rows) {
      for (const mark of ['last-used', 'image.json']) {
        const path = `${state.root}/.oci/images/${row.key}/${mark}`;
        if (existsSync(path)) utimesSync(path, old, old);
      }
    }
    const collect = await state.run(['gc', '--json']);
    assert.equal(collect.code, 0, collect.stderr);
    const removed = (JSON.parse(collect.stdout) as { oci: { images: string[] } }).oci.images;
    assert.ok(removed.includes(`${images.busybox.reference}@${images.busybox.digest}`), collect.stderr);
    assert.ok(!removed.some((name) => name.includes(images.env.digest)), 'the image a job runs on stays');
    assert.ok(existsSync(`${state.root}/.oci/blobs/sha256/${images.baseLayer.slice(7)}`), 'the base layer the env image needs stays');
    assert.equal((await state.stage('oci-14', 'build_script', 'hello')).code, 0);
    await cleanup('oci-14');
  });

  test('on btrfs the pulled tree is a read-only subvolume and jobs run on writable snapshots of it', async () => {
    let scratch: ScratchFilesystem | undefined;
    let fixture: StateFixture | undefined;
    try {
      scratch = mountScratchBtrfs();
      fixture = await StateFixture.withBusybox(['--config', config], scratch.mountPoint);
      const prepared = await prepare('oci-15', { name: images.layers.reference }, { fixture });
      assert.equal(prepared.code, 0, prepared.stderr);
      assert.match(prepared.stderr, /btrfs storage/);
      const tree = `${fixture.root}/.oci/images/${images.layers.digest.replace(':', '-')}/tree`;
      assert.ok(isSubvolume(tree));
      assert.throws(() => writeFileSync(`${tree}/x`, ''), /EROFS/);
      const stage = await fixture.stage('oci-15', 'build_script', 'echo written > /etc/new && cat /etc/new /etc/d/b');
      assert.equal(stage.code, 0, stage.stderr);
      assert.match(stage.stdout, /written\nb from the upper layer/);
      await cleanup('oci-15', fixture);
      // gc deletes read-only subvolumes too (the fixture's rm could not).
      const collected = await runner(['--root', fixture.root, '--config', configFile(work, ociConfig('  gc_unused_after: 0\n')), 'gc']);
      assert.equal(collected.code, 0, collected.stderr);
      assert.ok(!existsSync(tree));
    } finally {
      try { await fixture?.dispose(); } finally { scratch?.dispose(); }
    }
  });
});

/** The first process whose argv passes test, polled from /proc (an event we wait for, not a timer). */
async function waitForProcess(test: (argv: string[]) => boolean): Promise<number> {
  for (;;) {
    for (const name of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
      try {
        const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').slice(0, -1);
        if (argv.length && test(argv)) return Number(name);
      } catch {
        // gone meanwhile
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
