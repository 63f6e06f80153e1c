// nspawn-runner exec against real machines: pipelines of a git checkout run
// job by job on the busybox image (and one on the cached Debian image), with
// artifacts, caches, parallel jobs, after_script, rules and bad input.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { StateFixture } from '../support/fixture.mts';
import { gitIn, makeCheckout } from '../support/ci-fixtures.mts';
import { debianImage, debianRoot, ensureDebianImage } from '../support/images.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { executable, runner, type RunnerResult } from '../support/runner.mts';

/** The developer who owns the checkout and runs exec through sudo. */
const developer = 4321;

let state: StateFixture;
const checkouts: string[] = [];
before(async () => {
  state = await StateFixture.withBusybox();
});
after(async () => {
  for (const dir of checkouts) rmSync(dir, { recursive: true, force: true });
  await state?.dispose();
});

function checkout(files: Record<string, string>, branch = 'main'): string {
  const dir = makeCheckout(files, branch);
  execChown(dir);
  checkouts.push(dir);
  return dir;
}

function execChown(dir: string): void {
  chownSync(dir, developer, developer);
  for (const entry of readdirSync(dir, { recursive: true }) as string[]) chownSync(`${dir}/${entry}`, developer, developer);
}

async function exec(dir: string, args: string[] = [], root = state.root): Promise<RunnerResult> {
  const result = await runner(['--root', root, 'exec', '--cwd', dir, '--default-image', 'busybox', ...args], {
    // Not gitlab-runner's: exec's own exit codes (1 for a failed job or bad input).
    env: { NO_COLOR: '1', BUILD_FAILURE_EXIT_CODE: '', SYSTEM_FAILURE_EXIT_CODE: '' },
  });
  // Whatever happened, no machine, mount or job directory is left, nor exec's own directory.
  // Everything in root (an empty list of job ids would match nothing), then exec's own: its machines, their pasta, their mounts.
  const left = leftoversOf(root);
  const ofExec = (line: string) => line.includes('run-exec-') || line.includes('/.jobs/exec-') || line.includes('/.exec/');
  assert.deepEqual(left.processes.filter(ofExec), [], 'machines left');
  assert.deepEqual(left.mounts.filter(ofExec), [], 'mounts left');
  assert.deepEqual(existsSync(`${root}/.exec`) ? readdirSync(`${root}/.exec`) : [], [], 'exec directories left');
  assert.deepEqual(existsSync(`${root}/.jobs`) ? readdirSync(`${root}/.jobs`).filter((id) => id.startsWith('exec-')) : [], [], 'jobs left');
  return result;
}

/** The lines a job printed, without its prefix. */
function linesOf(output: string, job: string): string[] {
  return output.split('\n').filter((line) => line.startsWith(`${job} `) && /^[^|]*\| /.test(line))
    .filter((line) => line.slice(0, line.indexOf(' | ')).trimEnd() === job)
    .map((line) => line.slice(line.indexOf(' | ') + 3));
}

function summaryOf(output: string): Record<string, string> {
  const table = output.slice(output.lastIndexOf('\njob '));
  return Object.fromEntries(table.split('\n').slice(2).filter(Boolean).map((line) => {
    const [job, , result] = line.split(/ {2,}/);
    return [job!, result!];
  }));
}

describe('exec on busybox machines', () => {
  test('a two-stage pipeline: artifacts through needs, the sources of HEAD, predefined and local variables', async () => {
    const dir = checkout({
      '.gitlab-ci.yml': `
stages: [build, test]
variables:
  FROM_YAML: yaml
  OVERRIDDEN: yaml
build:
  stage: build
  script:
    - echo "sha=$CI_COMMIT_SHA branch=$CI_COMMIT_BRANCH gitlab=$GITLAB_CI ci=$CI job=$CI_JOB_NAME stage=$CI_JOB_STAGE"
    - echo "dir=$CI_PROJECT_DIR pwd=$PWD path=$CI_PROJECT_PATH"
    - echo "yaml=$FROM_YAML overridden=$OVERRIDDEN secret=$SECRET cli=$CLI"
    - cat version.txt
    - mkdir -p out && echo "built from $(cat version.txt)" > out/result.txt && echo log > out/build.log
  artifacts:
    paths: [out/]
    exclude: ['out/*.log']
test:
  stage: test
  needs: [build]
  script:
    - cat out/result.txt
    - test ! -e out/build.log
    - touch written-by-the-job
`,
      'version.txt': 'committed\n',
    });
    // Uncommitted work and local secrets: the job sees HEAD, and the secrets.
    writeFileSync(`${dir}/version.txt`, 'uncommitted\n');
    mkdirSync(`${dir}/.nspawn-runner`);
    writeFileSync(`${dir}/.nspawn-runner/variables.yml`, 'SECRET: s3cret\nOVERRIDDEN: local\n');
    const result = await exec(dir, ['--variable', 'CLI=from-cli']);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const build = linesOf(result.stdout, 'build');
    const sha = gitIn(dir, ['rev-parse', 'HEAD']);
    assert.ok(build.includes(`sha=${sha} branch=main gitlab=false ci=true job=build stage=build`), build.join('\n'));
    assert.ok(build.some((line) => /^dir=(\S+) pwd=\1 path=local\/nsr-exec-repo-/.test(line)), build.join('\n'));
    assert.ok(build.includes('yaml=yaml overridden=local secret=s3cret cli=from-cli'), build.join('\n'));
    assert.ok(build.includes('committed'));
    assert.deepEqual(linesOf(result.stdout, 'test').filter((line) => line.startsWith('built')), ['built from committed']);
    assert.deepEqual(summaryOf(result.stdout), { build: 'passed', test: 'passed' });
    // The artifacts are in the checkout, the developer's; nothing else of the jobs is.
    const artifacts = `${dir}/.nspawn-runner/artifacts/build`;
    assert.equal(readFileSync(`${artifacts}/out/result.txt`, 'utf8'), 'built from committed\n');
    assert.ok(!existsSync(`${artifacts}/out/build.log`));
    assert.equal(lstatSync(`${artifacts}/out/result.txt`).uid, developer);
    assert.ok(!existsSync(`${dir}/written-by-the-job`));
    assert.equal(gitIn(dir, ['status', '--porcelain']), 'M version.txt');
  });

  test('--dirty gives the working tree; a job run alone gets the artifacts of an earlier run', async () => {
    const dir = checkout({
      '.gitlab-ci.yml': 'build:\n  stage: build\n  script: [cat version.txt, "cp version.txt made.txt"]\n  artifacts:\n    paths: [made.txt]\n' +
        'use:\n  needs: [build]\n  script: [cat made.txt]\n',
      'version.txt': 'committed\n',
    });
    writeFileSync(`${dir}/version.txt`, 'uncommitted\n');
    const built = await exec(dir, ['--dirty', 'build']);
    assert.equal(built.code, 0, built.stdout + built.stderr);
    assert.ok(linesOf(built.stdout, 'build').includes('uncommitted'));
    const used = await exec(dir, ['use']);
    assert.equal(used.code, 0, used.stdout + used.stderr);
    assert.ok(linesOf(used.stdout, 'use').includes('uncommitted'));
  });

  test('a cache written by one run is restored by the next', async () => {
    const dir = checkout({
      '.gitlab-ci.yml': `
job:
  cache:
    key: deps-$CI_COMMIT_REF_SLUG
    paths: [deps/]
  script:
    - mkdir -p deps
    - 'echo "runs before: $(cat deps/runs 2>/dev/null || echo none)"'
    - echo run >> deps/runs
`,
    });
    const first = await exec(dir);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.ok(linesOf(first.stdout, 'job').includes('runs before: none'));
    assert.ok(linesOf(first.stdout, 'job').includes('no cache for key deps-main yet'));
    const second = await exec(dir);
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.ok(linesOf(second.stdout, 'job').includes('runs before: run'), second.stdout);
    assert.equal(readFileSync(`${dir}/.nspawn-runner/cache/deps-main/deps/runs`, 'utf8'), 'run\nrun\n');
    assert.equal(lstatSync(`${dir}/.nspawn-runner/cache/deps-main`).uid, developer);
  });

  test('parallel: matrix jobs, two at a time, each with its variables', async () => {
    const dir = checkout({
      '.gitlab-ci.yml': 'test:\n  script: [\'echo "$OS/$ARCH node $CI_NODE_INDEX of $CI_NODE_TOTAL"\']\n  parallel:\n    matrix:\n      - OS: linux\n        ARCH: [amd64, arm64]\n      - OS: bsd\n        ARCH: amd64\n',
    });
    const result = await exec(dir, ['--concurrency', '2']);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.ok(linesOf(result.stdout, 'test: [linux, amd64]').includes('linux/amd64 node 1 of 3'));
    assert.ok(linesOf(result.stdout, 'test: [linux, arm64]').includes('linux/arm64 node 2 of 3'));
    assert.ok(linesOf(result.stdout, 'test: [bsd, amd64]').includes('bsd/amd64 node 3 of 3'));
    assert.deepEqual(summaryOf(result.stdout), { 'test: [linux, amd64]': 'passed', 'test: [linux, arm64]': 'passed', 'test: [bsd, amd64]': 'passed' });
  });

  test('after_script runs after a failure, in its own shell; the exit code says a job failed', async () => {
    const dir = checkout({
      '.gitlab-ci.yml': `
failing:
  script:
    - export IN_SCRIPT=yes
    - cd /tmp
    - exit 7
    - echo never
  after_script:
    - echo "status=$CI_JOB_STATUS in_script=\${IN_SCRIPT:-unset} pwd=$PWD"
may-fail:
  script: [exit 3]
  allow_failure:
    exit_codes: [3]
later:
  stage: deploy
  script: [echo later]
cleanup:
  stage: deploy
  when: on_failure
  script: [echo cleaning up]
`,
    });
    const result = await exec(dir);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const failing = linesOf(result.stdout, 'failing');
    assert.ok(!failing.includes('never'));
    assert.ok(failing.some((line) => /^status=failed in_script=unset pwd=\/.*\/nsr-exec-repo-/.test(line)), failing.join('\n'));
    assert.deepEqual(summaryOf(result.stdout), {
      failing: 'failed (exit 7)', 'may-fail': 'failed, allowed (exit 3)', later: 'skipped', cleanup: 'passed',
    });
  });

  test('rules choose jobs by variables; --stage, --needs and job names select', async () => {
    const dir = checkout({
      '.gitlab-ci.yml': `
stages: [build, test, deploy]
build:
  stage: build
  script: [echo build]
unit:
  needs: [build]
  script: [echo unit]
other:
  script: [echo other]
deploy:
  stage: deploy
  script: [echo deploying to $TARGET]
  rules:
    - if: $DEPLOY == "yes" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
      variables: { TARGET: production }
`,
    });
    const list = await runner(['--root', state.root, 'exec', '--cwd', dir, '--list']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(list.stdout.split('\n').slice(1, -1).map((line) => line.split(/\s+/)[0]), ['build', 'unit', 'other']);
    const deploy = await exec(dir, ['--variable', 'DEPLOY=yes', 'deploy']);
    assert.equal(deploy.code, 0, deploy.stdout + deploy.stderr);
    assert.ok(linesOf(deploy.stdout, 'deploy').includes('deploying to production'));
    assert.deepEqual(Object.keys(summaryOf((await exec(dir, ['--needs', 'unit'])).stdout)), ['build', 'unit']);
    assert.deepEqual(Object.keys(summaryOf((await exec(dir, ['--stage', 'test'])).stdout)), ['unit', 'other']);
    const unknown = await exec(dir, ['deploy']);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr, 'nspawn-runner: error: no job "deploy" in this pipeline (jobs: build, unit, other)\n');
  });

  test('services: started beside the job, reached by alias and by the name derived from the image; nothing of them is left', async () => {
    const dir = checkout({
      '.gitlab-ci.yml': `
integration:
  services:
    - name: busybox
      alias: web
      command: ["httpd", "-f", "-p", "8080", "-h", "/etc"]
  script:
    # A local image exposes no ports, so prepare has none to wait for: the job waits for httpd itself.
    - for i in $(seq 100); do wget -qO /dev/null http://web:8080/os-release 2>/dev/null && break; sleep 0.1; done
    - wget -qO- http://web:8080/os-release | sed s/^/web=/
    - wget -qO- http://busybox:8080/os-release | sed s/^/busybox=/
`,
    });
    const result = await exec(dir);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const lines = linesOf(result.stdout, 'integration');
    assert.ok(lines.includes('Starting service busybox as web, busybox'), lines.join('\n'));
    for (const name of ['web', 'busybox']) assert.ok(lines.includes(`${name}=PRETTY_NAME="busybox test image"`), lines.join('\n'));
    assert.deepEqual(summaryOf(result.stdout), { integration: 'passed' });
    // The service machine and the pod's pasta are gone with the job.
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });

  test('a job over its timeout is stopped and failed', async () => {
    const dir = checkout({ '.gitlab-ci.yml': 'slow:\n  timeout: 1s\n  script: [sleep 600]\n  after_script: [echo after $CI_JOB_STATUS]\n' });
    const result = await exec(dir);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(summaryOf(result.stdout).slow!, /^failed \(exit \d+\), timed out$/);
    assert.ok(linesOf(result.stdout, 'slow').includes('after failed'));
  });

  test('Ctrl-C stops the running job, starts no other, and removes the machine', async () => {
    const dir = checkout({ '.gitlab-ci.yml': 'a:\n  script: [echo started, sleep 600]\nb:\n  stage: deploy\n  script: [echo b]\n' });
    const child = spawn(executable, ['--root', state.root, 'exec', '--cwd', dir, '--default-image', 'busybox'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (/^a \| started$/m.test(stdout) && !child.killed) child.kill('SIGINT');
    });
    const [code] = await once(child, 'close') as [number];
    assert.equal(code, 130, stdout + stderr);
    assert.deepEqual(summaryOf(stdout), { a: 'canceled', b: 'canceled' });
    await exec(dir, ['--list']);
  });

  test('bad input is one line and a non-zero exit, and no machine starts', async () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ '.gitlab-ci.yml': 'job:\n  script: [echo\nother: 1\n' }, /^nspawn-runner: error: \.gitlab-ci\.yml:3:1: invalid YAML: /],
      [{ '.gitlab-ci.yml': '.a:\n  extends: .b\n.b:\n  extends: .a\njob:\n  extends: .a\n  script: [x]\n' }, /circular extends: /],
      [{ '.gitlab-ci.yml': 'a:\n  needs: [b]\n  script: [x]\nb:\n  needs: [a]\n  script: [x]\n' }, /:1:1: needs cycle: a -> b -> a$/],
      [{ '.gitlab-ci.yml': 'include: ci/nope.yml\njob:\n  script: [x]\n' }, /:1:1: included file ci\/nope\.yml does not exist$/],
      [{ '.gitlab-ci.yml': 'job:\n  script:\n    - !reference [.x, script]\n' }, /:3:18: !reference \[\.x, script\] could not be found$/],
      [{ '.gitlab-ci.yml': 'job:\n  script: [x]\n  services:\n    - alias: db\n' }, /^nspawn-runner: error: \.gitlab-ci\.yml:4:7: job job: services: a service needs name: \(its image\)$/],
      [{ 'README': 'no pipeline here\n' }, /^nspawn-runner: error: \.gitlab-ci\.yml not found \(run exec in a git checkout that has one, or pass --file\)$/],
    ];
    for (const [files, message] of cases) {
      const dir = checkout(files);
      const result = await exec(dir);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.stderr.split('\n').length, 2, result.stderr);
      assert.match(result.stderr.trim(), message);
      assert.equal(result.stdout, '');
    }
    assert.ok(!existsSync(`${state.root}/.jobs`) || readdirSync(`${state.root}/.jobs`).length === 0);
  });
});

describe('exec on the Debian image', () => {
  before(async () => ensureDebianImage());

  test('bash and git in the machine: the checkout at HEAD, detached, shallow, untouched', async () => {
    const dir = checkout({
      '.gitlab-ci.yml': `
image: ${debianImage}
job:
  script:
    - test "$(git log -1 --format=%H)" = "$CI_COMMIT_SHA"
    - git status --porcelain | wc -l
    - echo "$BASH_VERSION" | grep -q . && echo bash
    - git rev-parse --abbrev-ref HEAD
`,
    });
    const result = await exec(dir, [], debianRoot);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.deepEqual(linesOf(result.stdout, 'job').filter((line) => !line.startsWith('$ ') && !line.startsWith('Running')), ['0', 'bash', 'HEAD']);
  });
});
