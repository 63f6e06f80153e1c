// CI jobs on OCI images, end to end through the real `gitlab-runner
// run-single`: a coordinator on loopback hands out jobs whose image: names an
// image in a loopback registry, the runner drives our [[runners]] section
// (from `toml`), and the test reads what reached the coordinator. Images: a
// busybox image without bash (with cache and artifacts, uploaded by the
// shared gitlab-runner binary), one with whiteouts, one with Env, each by tag
// and by digest; the Debian test image shipped with chroot-push; a private
// registry with DOCKER_AUTH_CONFIG; pull_policy variants.
// The binary comes from test/support/gitlab-runner.mts, as for gitlab-e2e.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, afterEach, before, describe, test } from 'node:test';
import { Coordinator, type JobSpec, type ServerJob } from '../support/coordinator.mts';
import { GitServer } from '../support/git-server.mts';
import { gitlabRunnerBinary, gitlabRunnerOptOut, runSingle } from '../support/gitlab-runner.mts';
import { debianImage, debianRoot, ensureDebianImage } from '../support/images.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { buildTestImages, type TestImages } from '../support/oci-images.mts';
import { Registry } from '../support/registry.mts';
import { runnerSection, type RunnerSection } from '../support/runner-config.mts';
import { runner } from '../support/runner.mts';

const firstJobId = 930_000_000 + (process.pid % 1000) * 1000;
const perJob = { timeout: 300_000 };
const user = { user: 'deploy', password: 'e2e-registry-pa55' };

describe('CI jobs on OCI images, driven by gitlab-runner run-single', { skip: gitlabRunnerOptOut }, () => {
  let binary: string;
  let root: string;
  let registry: Registry;
  let secured: Registry;
  let images: TestImages;
  let coordinator: Coordinator;
  let git: GitServer;
  let section: RunnerSection;

  before(async () => {
    binary = await gitlabRunnerBinary();
    await ensureDebianImage();
    root = mkdtempSync(`${tmpdir()}/nsr-oci-e2e-`);
    // The shared Debian image, linked in and never modified: chroot-push only reads it.
    symlinkSync(`${debianRoot}/${debianImage}`, `${root}/${debianImage}`);
    registry = await Registry.start();
    secured = await Registry.start(user);
    images = buildTestImages(registry);
    const pushAuth = mkdtempSync(`${tmpdir()}/nsr-push-auth-`);
    writeFileSync(`${pushAuth}/auth.json`, secured.authConfig());
    buildTestImages(secured, 'private', `${pushAuth}/auth.json`);
    rmSync(pushAuth, { recursive: true });
    writeFileSync(`${root}/nspawn-runner.conf`, [
      'oci:', '  enabled: true', '  insecure_registries: ["127.0.0.1:*"]', '  allowed_pull_policies: [always, if-not-present, never]', '',
    ].join('\n'));
    coordinator = await Coordinator.start(firstJobId);
    git = await GitServer.start({ 'README.md': 'sources of the OCI e2e jobs\n' });
    section = await runnerSection(root, coordinator.url, coordinator.runnerToken, debianImage, ['--config', `${root}/nspawn-runner.conf`]);
  });

  afterEach(() => {
    assert.deepEqual(leftoversOf(root), { mounts: [], processes: [], jobDirs: [] }, 'every job leaves nothing behind');
  });

  after(async () => {
    for (const id of coordinator?.jobs.keys() ?? []) await runner(['--root', root, 'cleanup', '--id', String(id)]);
    await coordinator?.close();
    await git?.close();
    await registry?.close();
    await secured?.close();
    if (root) {
      // Pulled trees go through gc (read-only subvolumes on btrfs); then the rest.
      writeFileSync(`${root}/gc.conf`, 'oci:\n  gc_unused_after: 0\n');
      await runner(['--root', root, '--config', `${root}/gc.conf`, 'gc']);
      rmSync(`${root}/${debianImage}`, { force: true });
      rmSync(root, { recursive: true, force: true });
    }
  });

  /** Queues a job (image: as an object when pull_policy is given) and runs it to the end. */
  async function runJob(spec: JobSpec & { image: string }, pullPolicy?: string[]): Promise<ServerJob> {
    const job = coordinator.enqueue({ repoUrl: git.url, sha: git.sha, ...spec });
    if (pullPolicy) (job.payload.image as Record<string, unknown>).pull_policy = pullPolicy;
    const runnerLog = await runSingle(binary, section);
    if (process.env.NSPAWN_RUNNER_TEST_TRACE) process.stderr.write(`--- job ${job.payload.id}: ${job.state} ${job.failureReason ?? ''}\n${job.trace}`);
    assert.notEqual(job.state, 'running', `the runner never reported a final state:\n${runnerLog}\n${job.trace}`);
    return job;
  }

  const noGit = { GIT_STRATEGY: 'none' };

  test('busybox without bash, by tag: stages run with sh; cache and artifacts work through the shared gitlab-runner', perJob, async () => {
    const cache = { key: 'oci-busybox', paths: ['vendor/'] };
    const writer = await runJob({
      image: images.busybox.reference, variables: noGit, cache, artifacts: { paths: ['out/'] },
      script: ['readlink /proc/$$/exe', 'grep PRETTY_NAME /etc/os-release', 'mkdir -p vendor out', 'echo "cached by $CI_JOB_ID" > vendor/dep.txt',
        'echo "artifact of $CI_JOB_ID" > out/result.txt'],
    });
    assert.equal(writer.state, 'success', writer.trace);
    assert.match(writer.trace, new RegExp(`on image ${images.busybox.reference} \\(${images.busybox.digest}\\)`));
    assert.match(writer.trace, /^\/bin\/busybox$/m);
    assert.match(writer.trace, /busybox test image/);
    assert.equal(writer.artifacts.length, 1, writer.trace);
    const reader = await runJob({ image: images.busybox.reference, variables: noGit, cache: { ...cache, policy: 'pull' }, script: ['cat vendor/dep.txt'] });
    assert.equal(reader.state, 'success', reader.trace);
    assert.match(reader.trace, new RegExp(`cached by ${writer.payload.id}`));
  });

  test('by digest: the whiteout image and the image whose Env reaches the job', perJob, async () => {
    const [layersRepository] = images.layers.reference.split(':1');
    const layers = await runJob({
      image: `${layersRepository}@${images.layers.digest}`, variables: noGit,
      script: ['test ! -e /etc/gone', 'ls /etc/d', 'cat /srv/thing'],
    });
    assert.equal(layers.state, 'success', layers.trace);
    assert.match(layers.trace, /^b$/m);
    assert.match(layers.trace, /^now a file$/m);
    const [envRepository] = images.env.reference.split(':1');
    const env = await runJob({ image: `${envRepository}@${images.env.digest}`, variables: noGit, script: ['echo "JAVA_HOME is $JAVA_HOME"', 'hello'] });
    assert.equal(env.state, 'success', env.trace);
    assert.match(env.trace, /^JAVA_HOME is \/opt\/java$/m);
    assert.match(env.trace, /^hello from the image's "Env" in \/opt\/java$/m);
  });

  test('the Debian image, shipped by chroot-push, runs a job with git sources when pinned by digest', perJob, async () => {
    const pushed = await runner(['--root', root, '--config', `${root}/nspawn-runner.conf`, 'chroot-push', debianImage, `${registry.host}/fleet/${debianImage}:1`]);
    assert.equal(pushed.code, 0, pushed.stderr);
    const pinned = pushed.stdout.trim();
    assert.match(pinned, new RegExp(`^${registry.host}/fleet/${debianImage}:1@sha256:[a-f0-9]{64}$`));
    const job = await runJob({ image: pinned, script: ['cat README.md', 'grep PRETTY_NAME /etc/os-release', 'bash --version | head -1'] });
    assert.equal(job.state, 'success', job.trace);
    assert.match(job.trace, /sources of the OCI e2e jobs/);
    assert.match(job.trace, /Debian GNU\/Linux 12 \(bookworm\)/);
    assert.match(job.trace, /GNU bash/);
  });

  test('a private registry: DOCKER_AUTH_CONFIG lets the job pull; a wrong one fails it once, without showing the secret', perJob, async () => {
    const reference = `${secured.host}/private/busybox:1`;
    const ok = await runJob({ image: reference, variables: { ...noGit, DOCKER_AUTH_CONFIG: secured.authConfig() }, script: ['echo pulled with credentials'] });
    assert.equal(ok.state, 'success', ok.trace);
    assert.match(ok.trace, /^pulled with credentials$/m);
    const wrong = { user: user.user, password: 'not-the-pa55' };
    const refused = await runJob({ image: `${secured.host}/private/env:1`, variables: { ...noGit, DOCKER_AUTH_CONFIG: secured.authConfig(wrong) }, script: ['echo never'] });
    assert.equal(refused.state, 'failed', refused.trace);
    assert.equal(refused.failureReason, 'script_failure');
    assert.equal(refused.trace.match(/access refused by/g)?.length, 1, `not retried:\n${refused.trace}`);
    for (const secret of [wrong.password, Buffer.from(`${wrong.user}:${wrong.password}`).toString('base64')]) assert.ok(!refused.trace.includes(secret));
    assert.deepEqual(readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((path) => path.endsWith('auth.json')), []);
  });

  test('pull_policy: never uses a pulled image and refuses a missing one; if-not-present asks no registry', perJob, async () => {
    const pulled = await runJob({ image: images.busybox.reference, variables: noGit, script: ['echo never pulls'] }, ['never']);
    assert.equal(pulled.state, 'success', pulled.trace);
    const missing = await runJob({ image: `${registry.host}/test/nosuchimage:1`, variables: noGit, script: ['echo never'] }, ['never']);
    assert.equal(missing.state, 'failed', missing.trace);
    assert.equal(missing.failureReason, 'script_failure');
    assert.match(missing.trace, /is not on this runner, and pull_policy is never/);
    const manifestRequests = () => execFileSync('grep', ['-c', 'GET /v2/test/busybox/manifests/1', `${registry.dir}/access.log`], { encoding: 'utf8' }).trim();
    const before = manifestRequests();
    const cached = await runJob({ image: images.busybox.reference, variables: noGit, script: ['echo from the store'] }, ['if-not-present']);
    assert.equal(cached.state, 'success', cached.trace);
    assert.equal(manifestRequests(), before, 'if-not-present did not ask the registry');
  });
});
