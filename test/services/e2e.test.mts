// Jobs with services:, end to end through the real `gitlab-runner
// run-single`: the coordinator hands out jobs whose payload lists services
// from a loopback registry (support/service-images.mts), and the job, on the
// busybox OCI image, talks to them by alias and by derived name.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, afterEach, before, describe, test } from 'node:test';
import { Coordinator, type JobSpec, type ServerJob } from '../support/coordinator.mts';
import { gitlabRunnerBinary, gitlabRunnerOptOut, runSingle } from '../support/gitlab-runner.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { buildTestImages, type TestImages } from '../support/oci-images.mts';
import { Registry } from '../support/registry.mts';
import { runnerSection, type RunnerSection } from '../support/runner-config.mts';
import { repoRoot, runner } from '../support/runner.mts';
import { buildServiceImages, type ServiceImages } from '../support/service-images.mts';

const firstJobId = 940_000_000 + (process.pid % 1000) * 1000;
const perJob = { timeout: 300_000 };
const noGit = { GIT_STRATEGY: 'none' };

/** Host names the Docker executor derives from 127.0.0.1:PORT/svc/NAME:1. */
const derived = (name: string) => [`127.0.0.1__svc__${name}`, `127.0.0.1-svc-${name}`];

function hostListeners(port: number): string {
  return execFileSync('ss', ['-Htln', `sport = :${port}`], { encoding: 'utf8' }).trim();
}

describe('jobs with services:, driven by gitlab-runner run-single', { skip: gitlabRunnerOptOut }, () => {
  let binary: string;
  let root: string;
  let registry: Registry;
  let images: TestImages;
  let services: ServiceImages;
  let coordinator: Coordinator;
  let section: RunnerSection;

  before(async () => {
    binary = await gitlabRunnerBinary();
    root = mkdtempSync(`${tmpdir()}/nsr-services-e2e-`);
    registry = await Registry.start();
    images = buildTestImages(registry);
    services = buildServiceImages(registry);
    writeFileSync(`${root}/nspawn-runner.conf`, [
      'oci:', '  enabled: true', '  insecure_registries: ["127.0.0.1:*"]', 'services_timeout: 10', '',
    ].join('\n'));
    coordinator = await Coordinator.start(firstJobId);
    section = await runnerSection(root, coordinator.url, coordinator.runnerToken, 'busybox', ['--config', `${root}/nspawn-runner.conf`]);
  });

  afterEach(() => {
    assert.deepEqual(leftoversOf(root), { mounts: [], processes: [], jobDirs: [] }, 'every job leaves nothing behind');
  });

  after(async () => {
    for (const id of coordinator?.jobs.keys() ?? []) await runner(['--root', root, 'cleanup', '--id', String(id)]);
    await coordinator?.close();
    await registry?.close();
    if (root) {
      writeFileSync(`${root}/gc.conf`, 'oci:\n  gc_unused_after: 0\n');
      await runner(['--root', root, '--config', `${root}/gc.conf`, 'gc']);
      rmSync(root, { recursive: true, force: true });
    }
  });

  /** Queues a job on the busybox image and runs it to the end. */
  async function runJob(spec: Omit<JobSpec, 'image'>, whileRunning?: (job: ServerJob) => Promise<void>): Promise<ServerJob> {
    const job = coordinator.enqueue({ image: images.busybox.reference, ...spec, variables: { ...noGit, ...spec.variables } });
    const running = runSingle(binary, section);
    // A job that ends before what whileRunning waits for must fail the test, not hang it.
    let watchError: unknown;
    await Promise.race([whileRunning?.(job).catch((error: unknown) => { watchError = error; }), running]);
    const runnerLog = await running;
    if (watchError) throw watchError;
    if (process.env.NSPAWN_RUNNER_TEST_TRACE) process.stderr.write(`--- job ${job.payload.id}: ${job.state} ${job.failureReason ?? ''}\n${job.trace}`);
    assert.notEqual(job.state, 'running', `the runner never reported a final state:\n${runnerLog}\n${job.trace}`);
    return job;
  }

  test('the job reaches its services by alias and by derived name, after_script too; variables:, WorkingDir and User apply; the host sees no port', perJob, async () => {
    const [secretName] = derived('secret');
    const job = await runJob({
      services: [
        { name: services.httpd.reference, alias: 'web,www' },
        { name: services.secret.reference, variables: { SECRET_PASSWORD: 'pa55-for-the-service' } },
      ],
      script: [
        'wget -qO- http://web:8080/', 'wget -qO- http://www:8080/',
        ...derived('httpd').map((name) => `wget -qO- http://${name}:8080/ | sed "s/^/${name}: /"`),
        `wget -qO- http://${secretName}:7000/secret | sed "s/^/secret: /"`, `wget -qO- http://${secretName}:7000/cwd | sed "s/^/cwd: /"`,
        `wget -qO- http://${secretName}:7000/user | sed "s/^/user: /"`,
        'echo "services reached"', 'sleep 3',
      ],
      afterScript: ['wget -qO- http://web:8080/ | sed "s/^/after_script: /"'],
    }, async (queued) => {
      await coordinator.waitForTrace(queued.payload.id, /^services reached$/m);
      assert.equal(hostListeners(8080), '', 'the service listens in the job\'s pod only');
    });
    assert.equal(job.state, 'success', job.trace);
    assert.equal(job.trace.match(/^hello from the httpd service$/gm)?.length, 2, job.trace);
    for (const name of derived('httpd')) assert.match(job.trace, new RegExp(`^${name}: hello from the httpd service$`, 'm'));
    assert.match(job.trace, /^secret: pa55-for-the-service$/m);
    assert.match(job.trace, /^cwd: \/srv\/secret$/m, 'the image\'s WorkingDir, made as Docker makes it');
    assert.match(job.trace, /^user: svc$/m, 'the image\'s User');
    assert.match(job.trace, /^after_script: hello from the httpd service$/m);
    assert.doesNotMatch(job.trace, /WARNING: Service/);
  });

  test('two jobs at once each run their own service on the same port', perJob, async () => {
    const spec = (password: string): Omit<JobSpec, 'image'> => ({
      services: [{ name: services.secret.reference, alias: 'db', variables: { SECRET_PASSWORD: password } }],
      script: ['sleep 2', 'wget -qO- http://db:7000/secret | sed "s/^/got: /"', 'sleep 2', 'wget -qO- http://db:7000/secret | sed "s/^/again: /"'],
    });
    // Both queued, then two runners at once: either may take either job.
    const [alpha, beta] = ['alpha', 'beta'].map((password) => coordinator.enqueue({ image: images.busybox.reference, ...spec(password), variables: noGit }));
    const logs = await Promise.all([runSingle(binary, section), runSingle(binary, section)]);
    for (const job of [alpha!, beta!]) assert.notEqual(job.state, 'running', `the runners never reported a final state:\n${logs.join('\n')}\n${job.trace}`);
    for (const [job, own, other] of [[alpha!, 'alpha', 'beta'], [beta!, 'beta', 'alpha']] as const) {
      assert.equal(job.state, 'success', job.trace);
      assert.match(job.trace, new RegExp(`^got: ${own}$`, 'm'));
      assert.match(job.trace, new RegExp(`^again: ${own}$`, 'm'));
      assert.doesNotMatch(job.trace, new RegExp(`: ${other}$`, 'm'));
    }
  });

  test('a slow service is waited for; one that never listens or exits gets a warning with its last 50 log lines, and the job goes on', perJob, async () => {
    const job = await runJob({
      // secret without its SECRET_PASSWORD refuses to start, as postgres does.
      services: [{ name: services.slow.reference }, { name: services.deaf.reference, alias: 'deaf' }, { name: services.secret.reference, alias: 'nopw' }],
      script: [`wget -qO- http://${derived('slow')[0]}:8081/`, 'echo "the job went on"'],
    });
    assert.equal(job.state, 'success', job.trace);
    assert.match(job.trace, /^slow but there$/m);
    assert.match(job.trace, /^the job went on$/m);
    assert.match(job.trace, new RegExp(`WARNING: Service ${services.deaf.reference.replaceAll('.', '\\.')} probably didn't start properly`));
    assert.match(job.trace, /nothing listens on port 8082 after 10 s/);
    assert.match(job.trace, /^deaf: deaf: log line 60$/m);
    assert.match(job.trace, /^deaf: deaf: log line 11$/m);
    assert.doesNotMatch(job.trace, /^deaf: deaf: log line 10$/m);
    assert.doesNotMatch(job.trace, /slow.*probably didn't start/);
    assert.match(job.trace, new RegExp(`WARNING: Service ${services.secret.reference.replaceAll('.', '\\.')} probably didn't start properly`));
    assert.match(job.trace, /^nopw: secret: SECRET_PASSWORD is not set, refusing to start$/m);
  });

  test('entrypoint: and command: replace the image\'s; CI_DEBUG_SERVICES streams the service\'s output by alias', perJob, async () => {
    const job = await runJob({
      variables: { CI_DEBUG_SERVICES: 'true' },
      services: [{ name: services.override.reference, alias: 'ov', entrypoint: ['httpd'], command: ['-f', '-v', '-p', '9000', '-h', '/etc'], ports: [9000] }],
      script: ['wget -qO- http://ov:9000/os-release | grep PRETTY_NAME', 'sleep 2', 'echo "done"'],
    });
    assert.equal(job.state, 'success', job.trace);
    assert.match(job.trace, /busybox test image/);
    assert.match(job.trace, /^\[service:ov\] .*response:200/m);
    assert.doesNotMatch(job.trace, /the image entrypoint ran/);
  });

  test('a service image that does not exist is a build failure naming it', perJob, async () => {
    const missing = `${registry.host}/svc/nosuchservice:1`;
    const job = await runJob({ services: [{ name: missing }], script: ['echo never'] });
    assert.equal(job.state, 'failed', job.trace);
    assert.equal(job.failureReason, 'script_failure');
    assert.match(job.trace, new RegExp(`service ${missing.replaceAll('.', '\\.')}: `));
    assert.doesNotMatch(job.trace, /^never$/m);
  });

  test('a cancel and a timeout stop the services with the job', perJob, async () => {
    const spec = (timeoutSeconds?: number): Omit<JobSpec, 'image'> => ({
      ...(timeoutSeconds ? { timeoutSeconds } : {}),
      services: [{ name: services.httpd.reference, alias: 'web' }],
      script: ['wget -qO- http://web:8080/', 'echo "waiting"', 'sleep 600'],
    });
    const cancelled = await runJob(spec(), async (queued) => {
      await coordinator.waitForTrace(queued.payload.id, /^waiting$/m);
      coordinator.cancel(queued.payload.id);
    });
    assert.equal(cancelled.state, 'failed', cancelled.trace);
    assert.deepEqual(leftoversOf(root), { mounts: [], processes: [], jobDirs: [] });
    const timedOut = await runJob(spec(15));
    assert.equal(timedOut.state, 'failed', timedOut.trace);
    assert.equal(timedOut.failureReason, 'job_execution_timeout');
  });

  test('gc after a killed prepare stops the services, pasta and the pod', perJob, async () => {
    const id = String(firstJobId + 900);
    const jobFile = `${root}/killed-job.json`;
    writeFileSync(jobFile, JSON.stringify({
      image: { name: images.busybox.reference }, variables: [],
      services: [{ name: services.httpd.reference, alias: 'web' }, { name: services.deaf.reference }],
    }));
    const prepare = spawn(`${repoRoot}/bin/nspawn-runner`, ['--root', root, '--config', `${root}/nspawn-runner.conf`, 'prepare'], {
      env: { ...process.env, CUSTOM_ENV_CI_JOB_ID: id, JOB_RESPONSE_FILE: jobFile }, stdio: 'ignore', detached: true,
    });
    const record = `${root}/.jobs/${id}/job.json`;
    // Killed while it waits for the deaf service: machines, pasta and the pod exist.
    for (let i = 0; i < 300 && !(existsSync(record) && /"leaderPid"[^]*"leaderPid"[^]*"leaderPid"/.test(readFileSync(record, 'utf8'))); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    process.kill(-prepare.pid!, 'SIGKILL');
    assert.notDeepEqual(leftoversOf(root, [id]).processes, [], 'the machines ran when prepare was killed');
    const gc = await runner(['--root', root, '--config', `${root}/nspawn-runner.conf`, 'gc']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual(leftoversOf(root, [id]), { mounts: [], processes: [], jobDirs: [] });
  });
});
