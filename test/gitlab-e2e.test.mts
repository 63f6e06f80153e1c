// Whole CI jobs, as GitLab sees them: a coordinator hands out a job, the real
// `gitlab-runner run-single` drives our executor through every stage (the
// [[runners]] section our `toml` command prints), and the test reads what
// reached the coordinator: the final state, failure_reason, exit_code, the log
// and the artifacts. Sources come from a git server on loopback, cloned inside
// the machine; jobs run on the cached Debian image, and on busybox where that
// suffices. gitlab-runner is built by test/support/install-gitlab-runner.sh;
// when it cannot be, the suite fails with the build's reason (see
// support/gitlab-runner.mts for the one opt-out).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { after, afterEach, before, describe, test } from 'node:test';
import { Coordinator, type JobSpec, type ServerJob } from './support/coordinator.mts';
import { GitServer } from './support/git-server.mts';
import { gitlabRunnerBinary, gitlabRunnerOptOut, runSingle } from './support/gitlab-runner.mts';
import { debianImage, debianRoot, ensureDebianImage, makeBusyboxImage } from './support/images.mts';
import { leftoversOf } from './support/leftovers.mts';
import { runnerSection, type RunnerSection } from './support/runner-config.mts';
import { runner } from './support/runner.mts';

// Job ids name machines (run-<id>): far from the ids other suites use on this host.
const firstJobId = 900_000_000 + (process.pid % 1000) * 1000;
const perJob = { timeout: 180_000 };

/** Processes on the host whose command line contains marker (a job's own unique sleep). */
function processesWith(marker: string): string[] {
  return readdirSync('/proc').filter((pid) => /^\d+$/.test(pid) && pid !== String(process.pid)).flatMap((pid) => {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      return cmdline.includes(marker) ? [`${pid} ${cmdline}`] : [];
    } catch {
      return [];
    }
  });
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Files in a zip, read with the host's python3 (what GitLab would store). */
function unzip(content: Buffer): Record<string, string> {
  const script = 'import io, json, sys, zipfile\nz = zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))\n' +
    'print(json.dumps({n: z.read(n).decode() for n in z.namelist() if not n.endswith("/")}))';
  return JSON.parse(execFileSync('python3', ['-c', script], { input: content, encoding: 'utf8' })) as Record<string, string>;
}

function filesNamed(dir: string, name: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((path) => path.endsWith(`/${name}`));
}

describe('CI jobs end to end, driven by gitlab-runner run-single', { skip: gitlabRunnerOptOut }, () => {
  let binary: string;
  let root: string;
  let coordinator: Coordinator;
  let git: GitServer;
  let runnerConfig: RunnerSection;

  before(async () => {
    binary = await gitlabRunnerBinary();
    await ensureDebianImage();
    // A state directory of its own (its cache and builds dirs are this
    // suite's), with the shared Debian image linked in, never modified.
    root = mkdtempSync(`${tmpdir()}/nsr-e2e-`);
    symlinkSync(`${debianRoot}/${debianImage}`, `${root}/${debianImage}`);
    makeBusyboxImage(`${root}/busybox`);
    // An image directory without an OS tree: systemd-nspawn refuses to start it.
    mkdirSync(`${root}/broken`);
    coordinator = await Coordinator.start(firstJobId);
    git = await GitServer.start({ 'README.md': 'hello from the e2e repository\n' });
    runnerConfig = await runnerSection(root, coordinator.url, coordinator.runnerToken, debianImage);
  });

  afterEach(() => {
    assert.deepEqual(leftoversOf(root), { mounts: [], processes: [], jobDirs: [] }, 'every job leaves nothing behind');
  });

  after(async () => {
    // Clean even after a failed assertion: every job the coordinator handed out.
    for (const id of coordinator?.jobs.keys() ?? []) await runner(['--root', root, 'cleanup', '--id', String(id)]);
    await coordinator?.close();
    await git?.close();
    if (root) {
      rmSync(`${root}/${debianImage}`, { force: true });
      rmSync(root, { recursive: true, force: true });
    }
  });

  /** Queues a job with the test repository as its sources and runs it to the end. */
  async function runJob(spec: JobSpec, whileRunning?: (job: ServerJob) => Promise<void>, config = runnerConfig): Promise<ServerJob> {
    const job = coordinator.enqueue({ repoUrl: git.url, sha: git.sha, ...spec });
    const running = runSingle(binary, config);
    await whileRunning?.(job);
    const runnerLog = await running;
    // NSPAWN_RUNNER_TEST_TRACE=1 shows each job's log as GitLab would.
    if (process.env.NSPAWN_RUNNER_TEST_TRACE) process.stderr.write(`--- job ${job.payload.id}: ${job.state} ${job.failureReason ?? ''}\n${job.trace}`);
    assert.notEqual(job.state, 'running', `the runner never reported a final state:\n${runnerLog}\n${job.trace}`);
    return job;
  }

  test('a passing job clones its sources inside the machine and succeeds', perJob, async () => {
    const job = await runJob({ script: ['cat README.md', 'git log --format=%s -1', 'echo "job $CI_JOB_ID in $(hostname)"'] });
    assert.equal(job.state, 'success', job.trace);
    assert.equal(job.failureReason || undefined, undefined);
    assert.match(job.trace, new RegExp(`machine run-${job.payload.id} on image ${debianImage}`));
    assert.match(job.trace, /hello from the e2e repository/);
    assert.match(job.trace, /e2e sources/);
    assert.match(job.trace, new RegExp(`job ${job.payload.id} in run-${job.payload.id}`));
    // The job log is for the CI user: no debug lines, no nspawn noise.
    assert.doesNotMatch(job.trace, /nspawn-runner: debug:|Attempted to remove disk file system/);
    assert.deepEqual(coordinator.unknownRequests, []);
  });

  test('a failing job is a script_failure with its exit code; after_script still runs and reaches its service', perJob, async () => {
    const port = await freePort();
    const job = await runJob({
      script: [
        'mkdir -p /srv/www && echo "served since build_script" > /srv/www/index.html',
        // Not redirected: the server holds the stage's stdout open, the stage must end anyway.
        `python3 -m http.server ${port} --bind 127.0.0.1 --directory /srv/www &`,
        `for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null && break; sleep 0.1; done`,
        'echo "failing on purpose"',
        'exit 7',
      ],
      afterScript: [`python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:${port}/').read().decode())"`],
    });
    assert.equal(job.state, 'failed', job.trace);
    assert.equal(job.failureReason, 'script_failure');
    assert.equal(job.exitCode, 7);
    const failed = job.trace.indexOf('failing on purpose');
    assert.ok(failed >= 0, job.trace);
    assert.ok(job.trace.indexOf('served since build_script', failed) > failed, `after_script reached the service:\n${job.trace}`);
  });

  test('before gitlab-runner 17.9 (no BUILD_EXIT_CODE_FILE), a failed script reports the build-failure code', perJob, async () => {
    // gitlab-runner 17.9.3 playing an older one: run_exec goes through env -u,
    // so our executor sees what gitlab-runner set before 17.9. gitlab-runner
    // then reads no file and reports its BUILD_FAILURE_EXIT_CODE (1).
    const { run_exec: runExec, run_args: runArgs = [] } = runnerConfig.custom;
    const older = { ...runnerConfig, custom: { ...runnerConfig.custom, run_exec: '/usr/bin/env', run_args: ['-u', 'BUILD_EXIT_CODE_FILE', runExec, ...runArgs] } };
    const job = await runJob({ script: ['exit 7'] }, undefined, older);
    assert.equal(job.state, 'failed', job.trace);
    assert.equal(job.failureReason, 'script_failure');
    assert.equal(job.exitCode, 1);
  });

  test('a missing image fails at once, as the job\'s fault, naming the images there are', perJob, async () => {
    const job = await runJob({ image: 'nosuchimage', script: ['echo never runs'] });
    assert.equal(job.state, 'failed', job.trace);
    assert.equal(job.failureReason, 'script_failure');
    assert.match(job.trace, /image "nosuchimage" not found in .*; available: bookworm, broken, busybox/);
    assert.equal(job.trace.match(/not found in/g)?.length, 1, `prepare was not retried:\n${job.trace}`);
    assert.doesNotMatch(job.trace, /^never runs$/m);
  });

  test('a machine that cannot start is a runner_system_failure, retried three times, cleaned each time', perJob, async () => {
    const job = await runJob({ image: 'broken', script: ['echo never runs'] });
    assert.equal(job.state, 'failed', job.trace);
    assert.equal(job.failureReason, 'runner_system_failure');
    assert.equal(job.trace.match(/machine run-\d+ did not start: .+/g)?.length, 3, job.trace);
    assert.match(job.trace, /did not start: .*(OS tree|os-release|No such file)/);
  });

  test('image: picks the image, no image: runs on the default', perJob, async () => {
    const busybox = await runJob({ image: 'busybox', variables: { GIT_STRATEGY: 'none' }, script: ['cat /etc/os-release'] });
    assert.equal(busybox.state, 'success', busybox.trace);
    assert.match(busybox.trace, /machine run-\d+ on image busybox/);
    assert.match(busybox.trace, /PRETTY_NAME="busybox test image"/);
    const docker = await runJob({ image: 'debian:bookworm', script: ['grep PRETTY_NAME /etc/os-release'] });
    assert.match(docker.trace, /machine run-\d+ on image bookworm/);
    const fallback = await runJob({ script: ['grep PRETTY_NAME /etc/os-release'] });
    assert.equal(fallback.state, 'success', fallback.trace);
    assert.match(fallback.trace, /machine run-\d+ on image bookworm/);
    assert.match(fallback.trace, /Debian GNU\/Linux 12 \(bookworm\)/);
  });

  test('a cache written by one job is restored in the next job\'s machine', perJob, async () => {
    const cache = { key: 'deps', paths: ['vendor/'] };
    const writer = await runJob({ script: ['mkdir -p vendor', 'echo "cached by job $CI_JOB_ID" > vendor/dep.txt'], cache });
    assert.equal(writer.state, 'success', writer.trace);
    assert.equal(filesNamed(`${root}/.cache`, 'cache.zip').length, 1, 'the cache archive is on the host');
    const reader = await runJob({ script: ['cat vendor/dep.txt'], cache: { ...cache, policy: 'pull' } });
    assert.equal(reader.state, 'success', reader.trace);
    assert.match(reader.trace, new RegExp(`cached by job ${writer.payload.id}`));
  });

  test('with keep_builds, the checkout stays on the host and the next job fetches into it', perJob, async () => {
    const settings = `${root}/keep-builds.conf`;
    writeFileSync(settings, 'keep_builds: true\n');
    const keeping = await runnerSection(root, coordinator.url, coordinator.runnerToken, debianImage, ['--config', settings]);
    const first = await runJob({ script: ['git log --format=%s -1'] }, undefined, keeping);
    assert.equal(first.state, 'success', first.trace);
    assert.doesNotMatch(first.trace, /Reinitialized existing Git repository/);
    const second = await runJob({ script: ['git log --format=%s -1'] }, undefined, keeping);
    assert.equal(second.state, 'success', second.trace);
    assert.match(second.trace, /Reinitialized existing Git repository/);
    assert.equal(filesNamed(`${root}/.build`, 'HEAD').filter((path) => path.endsWith('.git/HEAD')).length, 1);
  });

  test('artifacts reach the coordinator, uploaded from inside the machine by the shared gitlab-runner', perJob, async () => {
    const job = await runJob({ script: ['mkdir -p out', 'echo "artifact of job $CI_JOB_ID" > out/result.txt'], artifacts: { paths: ['out/'] } });
    assert.equal(job.state, 'success', job.trace);
    assert.equal(job.artifacts.length, 1, job.trace);
    const [upload] = job.artifacts;
    assert.equal(upload!.token, job.payload.token);
    assert.equal(upload!.query.artifact_type, 'archive');
    assert.deepEqual(unzip(upload!.content), { 'out/result.txt': `artifact of job ${job.payload.id}\n` });
  });

  test('a cancelled job stops, runs after_script and cleanup, and leaves no process', perJob, async () => {
    const marker = 'sleep 617';
    const job = await runJob(
      { script: ['echo "started sleeping"', marker, 'echo "never reached"'], afterScript: ['echo "after_script after the cancel"'] },
      async (queued) => {
        await coordinator.waitForTrace(queued.payload.id, /^started sleeping$/m);
        coordinator.cancel(queued.payload.id);
      },
    );
    assert.equal(job.state, 'failed', job.trace);
    assert.notEqual(job.failureReason, 'script_failure');
    assert.match(job.trace, /after_script after the cancel/);
    assert.doesNotMatch(job.trace, /^never reached$/m);
    assert.deepEqual(processesWith(marker), []);
  });

  test('a stage that ignores SIGTERM is killed when the grace period is over', perJob, async () => {
    const marker = 'sleep 637';
    // A regular expression that matches marker but not itself in grep's own command line.
    const pattern = marker.replace(/(\d)$/, '[$1]');
    // Ignored signals stay ignored across exec: sleep ignores SIGTERM too.
    const job = await runJob({
      script: ['trap "" TERM', 'echo "ignoring SIGTERM"', marker],
      // The stage ends when its processes are gone, not while they run on beside after_script.
      afterScript: [`if cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q '${pattern}'; then echo "stage still running"; else echo "stage processes gone"; fi`],
    }, async (queued) => {
      await coordinator.waitForTrace(queued.payload.id, /^ignoring SIGTERM$/m);
      coordinator.cancel(queued.payload.id);
    });
    assert.equal(job.state, 'failed', job.trace);
    assert.match(job.trace, /^stage processes gone$/m);
    assert.deepEqual(processesWith(marker), []);
  });

  test('a job over its timeout is stopped and cleaned up', perJob, async () => {
    const marker = 'sleep 627';
    const job = await runJob({ timeoutSeconds: 15, script: ['echo "waiting for the timeout"', marker] });
    assert.equal(job.state, 'failed', job.trace);
    assert.equal(job.failureReason, 'job_execution_timeout');
    assert.deepEqual(processesWith(marker), []);
  });
});
