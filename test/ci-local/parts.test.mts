// exec's parts that need no machine: the stage scripts, the prefixed output,
// the schedule, the safe copies of artifacts and caches, the sources.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, describe, test } from 'node:test';
import type { CiJob, JobDefinition, Pipeline } from '../../lib/ci/model.mts';
import { cacheDirName, filesKey, parseDotenv, selectPaths, storeTree, restoreTree } from '../../lib/ci-local/artifacts.mts';
import { loadProject, parseVariableOptions, resultText } from '../../lib/ci-local/exec.mts';
import { loadSettings } from '../../lib/settings.mts';
import { formatSummary, PrefixedOutput } from '../../lib/ci-local/output.mts';
import { changedFiles, makeSources, projectPathOf, readRepo } from '../../lib/ci-local/repo.mts';
import type { JobResult } from '../../lib/ci-local/run-job.mts';
import { decide, planJobs, runPlan } from '../../lib/ci-local/schedule.mts';
import { buildStageScript, echoLine } from '../../lib/ci-local/script.mts';
import { localJobServices } from '../../lib/ci-local/services.mts';
import { variablesFrom } from '../../lib/ci/variables.mts';
import { copyEntries } from '../../lib/ci-local/tree-copy.mts';
import { gitIn, makeCheckout } from '../support/ci-fixtures.mts';

const base = mkdtempSync(`${tmpdir()}/nsr-exec-parts-`);
after(() => rmSync(base, { recursive: true, force: true }));

describe('stage scripts', () => {
  const script = buildStageScript({
    variables: new Map([['CI_JOB_NAME', 'it\'s a job'], ['MULTI', 'a\nb'], ['1BAD', 'x']]),
    projectDir: '/builds/group/app',
    commands: ['echo "$CI_JOB_NAME"', 'for i in 1 2; do\n  echo $i\ndone', 'false', 'echo never'],
    color: false,
  });

  test('run in sh: variables exported, the project directory entered, each command echoed, the first failure ends it', () => {
    const dir = mkdtempSync(`${base}/script-`);
    writeFileSync(`${dir}/s.sh`, script.replaceAll('/builds/group/app', dir));
    const result = (() => {
      try {
        return { code: 0, out: execFileSync('sh', [`${dir}/s.sh`], { encoding: 'utf8', env: {} }) };
      } catch (error) {
        const failed = error as { status: number; stdout: string };
        return { code: failed.status, out: failed.stdout };
      }
    })();
    assert.equal(result.code, 1);
    assert.equal(result.out, [
      '$ echo "$CI_JOB_NAME"', "it's a job",
      '$ for i in 1 2; do # collapsed multi-line command', '1', '2',
      '$ false', '',
    ].join('\n'));
  });

  test('names a shell cannot export are left out', () => {
    assert.ok(!script.includes('1BAD'));
    assert.ok(script.includes(`export MULTI='a\nb'`));
  });

  test('on a terminal the echo is bold green, as gitlab-runner prints it', () => {
    assert.equal(echoLine('make', true), "printf '\\033[32;1m%s\\033[0;m\\n' '$ make'");
  });
});

describe('output', () => {
  test('whole lines behind the job name; partial lines wait for their end', () => {
    const written: string[] = [];
    const output = new PrefixedOutput(['build', 'test: [a, b]'], false, (text) => written.push(text));
    const build = output.forJob('build');
    const other = output.forJob('test: [a, b]');
    build.data(Buffer.from('one\ntw'));
    other.data(Buffer.from('x\n'));
    build.data(Buffer.from('o\r\nthree'));
    build.flush();
    other.note('done');
    assert.deepEqual(written.join(''), [
      'build        | one', 'test: [a, b] | x', 'build        | two', 'build        | three', 'test: [a, b] | done', '',
    ].join('\n'));
  });

  test('a multi-byte character split between chunks stays whole', () => {
    const written: string[] = [];
    const out = new PrefixedOutput(['j'], false, (text) => written.push(text)).forJob('j');
    const bytes = Buffer.from('é\n');
    out.data(bytes.subarray(0, 1));
    out.data(bytes.subarray(1));
    assert.equal(written.join(''), 'j | é\n');
  });

  test('the summary is a table', () => {
    assert.equal(formatSummary([
      { job: 'build', stage: 'build', result: 'passed', durationMs: 1234 },
      { job: 'a-long-job', stage: 'test', result: 'failed (exit 3)', durationMs: 75_000 },
      { job: 'manual', stage: 'deploy', result: 'manual', durationMs: undefined },
    ]), [
      'job         stage   result           duration',
      'build       build   passed           1.2 s',
      'a-long-job  test    failed (exit 3)  1 min 15 s',
      'manual      deploy  manual',
      '',
    ].join('\n'));
    assert.equal(resultText({ status: 'failed', allowed: true, exitCode: 3 }), 'failed, allowed (exit 3)');
    assert.equal(resultText({ status: 'failed', allowed: false, note: 'timed out' }), 'failed, timed out');
  });
});

function fakeJob(name: string, stage: string, stageIndex: number, extra: Partial<CiJob> = {}): CiJob {
  const definition = { name, stage } as JobDefinition;
  return { name, definition, stage, stageIndex, when: 'on_success', allowFailure: { allowed: false }, variables: new Map(), predefined: {}, dependencies: [], ...extra };
}

describe('schedule', () => {
  const jobs = [
    fakeJob('build', 'build', 1),
    fakeJob('lint', 'build', 1, { allowFailure: { allowed: true } }),
    fakeJob('test', 'test', 2, { needs: [{ job: 'build', artifacts: true, optional: false }] }),
    fakeJob('other', 'test', 2),
    fakeJob('on-failure', 'deploy', 3, { when: 'on_failure' }),
    fakeJob('always', 'deploy', 3, { when: 'always' }),
    fakeJob('manual', 'deploy', 3, { when: 'manual', allowFailure: { allowed: false } }),
    fakeJob('after-manual', '.post', 4),
  ];
  const pipeline = { stages: ['.pre', 'build', 'test', 'deploy', '.post'], jobs, variables: new Map(), warnings: [] } satisfies Pipeline;

  async function run(outcomes: Record<string, JobResult['status']>, concurrency = 1, selection = { jobs: [] as string[], needs: false, manual: [] as string[] }) {
    const order: string[] = [];
    const results = await runPlan(planJobs(pipeline, selection), concurrency, {
      run: async (job) => {
        order.push(job.name);
        await new Promise((resolve) => setTimeout(resolve, 1));
        return { status: outcomes[job.name] ?? 'success', allowed: job.allowFailure.allowed && outcomes[job.name] === 'failed' };
      },
      skip: () => undefined,
      canceled: () => false,
    });
    return { order, results: Object.fromEntries([...results].map(([name, result]) => [name, result.status])) };
  }

  test('a pipeline that passes: on_failure skipped, manual not run, and a blocking manual job holds later stages', async () => {
    const { order, results } = await run({});
    assert.deepEqual(order, ['build', 'lint', 'test', 'other', 'always']);
    assert.deepEqual(results, {
      build: 'success', lint: 'success', test: 'success', other: 'success', 'on-failure': 'skipped', always: 'success', manual: 'manual', 'after-manual': 'skipped',
    });
  });

  test('a failure skips what waits for it; one allowed to fail does not; on_failure and always run', async () => {
    const { results } = await run({ build: 'failed', lint: 'failed' });
    assert.deepEqual(results, {
      build: 'failed', lint: 'failed', test: 'skipped', other: 'skipped', 'on-failure': 'success', always: 'success', manual: 'manual', 'after-manual': 'skipped',
    });
  });

  test('named jobs run, manual ones too; --needs adds what they need', async () => {
    assert.deepEqual((await run({}, 1, { jobs: ['manual'], needs: false, manual: [] })).order, ['manual']);
    assert.deepEqual((await run({}, 1, { jobs: ['test'], needs: true, manual: [] })).order, ['build', 'test']);
    assert.throws(() => planJobs(pipeline, { jobs: ['nope'], needs: false, manual: [] }),
      (error: Error & { hint?: string }) => /no job "nope"/.test(error.message) && error.hint === 'jobs: build, lint, test, other, on-failure, always, manual, after-manual');
    assert.throws(() => planJobs(pipeline, { jobs: [], stage: 'nope', needs: false, manual: [] }), /no stage "nope"/);
  });

  test('with concurrency, a job with needs starts as soon as they are done', async () => {
    const { order } = await run({}, 4);
    assert.deepEqual(order.slice(0, 2), ['build', 'lint']);
    assert.ok(order.indexOf('test') < order.indexOf('always'));
  });

  test('an interrupted run starts nothing more', () => {
    const plan = planJobs(pipeline, { jobs: [], needs: false, manual: [] });
    assert.deepEqual(decide(jobs[0]!, [], plan, true), { run: false, status: 'canceled', note: 'the run was interrupted' });
  });
});

describe('services', () => {
  const jobVariables = new Map([['REGISTRY', 'registry.example.com'], ['NAME', 'db'], ['PASSWORD', 'pw'], ['CI_DEBUG_SERVICES', 'true']]);

  test('names and aliases expanded with the job\'s variables; entrypoint and command as written; variables over the job\'s', () => {
    const services = localJobServices([
      {
        name: '$REGISTRY/postgres:16', alias: '${NAME}, $NAME-2', entrypoint: ['sh', '-c', 'exec "$0" "$@"'], command: ['postgres', '-c', '$$x'],
        variables: new Map([
          ['POSTGRES_PASSWORD', { value: '$PASSWORD', raw: false }], ['URL', { value: 'postgres://$NAME:$POSTGRES_PASSWORD@localhost', raw: false }],
          ['RAW', { value: '$PASSWORD', raw: true }],
        ]),
        pullPolicy: ['always'],
      },
      { name: 'redis:7', variables: new Map() },
    ], jobVariables);
    assert.deepEqual(services, {
      services: [{
        image: 'registry.example.com/postgres:16',
        hostNames: ['db', 'db-2', 'registry.example.com__postgres', 'registry.example.com-postgres'],
        entrypoint: ['sh', '-c', 'exec "$0" "$@"'],
        command: ['postgres', '-c', '$$x'],
        ports: [],
        variables: [['POSTGRES_PASSWORD', 'pw'], ['URL', 'postgres://db:pw@localhost'], ['RAW', '$PASSWORD']],
        pullPolicies: ['always'],
      }, {
        image: 'redis:7', hostNames: ['redis'], entrypoint: undefined, command: undefined, ports: [], variables: [], pullPolicies: [],
      }],
      // Every variable of a local run is the developer's own: all of them reach the services.
      jobVariables: [...jobVariables],
      debug: true,
    });
  });

  test('a name that expands to nothing, or an alias that is no host name, fails the job before any machine starts', () => {
    assert.throws(() => localJobServices([{ name: '$UNSET', variables: variablesFrom({}) }], jobVariables), /^JobError: service \$UNSET: its image name is empty/);
    assert.throws(() => localJobServices([{ name: 'redis', alias: '$REGISTRY/x', variables: variablesFrom({}) }], jobVariables),
      /^JobError: service redis: alias "registry\.example\.com\/x" is not a host name$/);
    assert.equal(localJobServices([], new Map([['CI_DEBUG_SERVICES', 'no']])).debug, false);
  });
});

describe('artifacts and caches', () => {
  test('paths, directories, globs, exclude and untracked select as gitlab-runner does', () => {
    const project = mkdtempSync(`${base}/select-`);
    for (const file of ['dist/app.js', 'dist/app.js.map', 'dist/sub/x.o', 'src/main.c', 'src/main.o', 'notes.txt', 'tracked.txt']) {
      mkdirSync(`${project}/${file.split('/').slice(0, -1).join('/') || '.'}`, { recursive: true });
      writeFileSync(`${project}/${file}`, file);
    }
    mkdirSync(`${project}/.git`);
    writeFileSync(`${project}/.git/config`, '');
    const selection = selectPaths(project, { paths: ['dist/', 'src/*.o', 'missing/'], exclude: ['**/*.map', 'dist/sub/*.o'] });
    assert.deepEqual(selection.paths, ['dist', 'dist/app.js', 'dist/sub', 'src/main.o']);
    assert.deepEqual(selection.warnings, ['missing/: no matching files']);
    const untracked = selectPaths(project, { paths: [], untracked: true, tracked: new Set(['tracked.txt', 'src/main.c']) });
    assert.deepEqual(untracked.paths, ['dist/app.js', 'dist/app.js.map', 'dist/sub/x.o', 'notes.txt', 'src/main.o']);
    assert.deepEqual(selectPaths(project, { paths: ['../etc', '/etc/passwd'] }).warnings, ['../etc: not inside the project directory', '/etc/passwd: not inside the project directory']);
  });

  test('a copy never follows a symlink, on either side', () => {
    const host = mkdtempSync(`${base}/host-`);
    writeFileSync(`${host}/secret`, 'host secret');
    // What a job left: a symlink to the host's directory, a file "through" it, a link to a secret.
    const project = mkdtempSync(`${base}/project-`);
    symlinkSync(host, `${project}/escape`);
    symlinkSync(`${host}/secret`, `${project}/secret-link`);
    mkdirSync(`${project}/real`);
    writeFileSync(`${project}/real/file`, 'ok');
    const stored = mkdtempSync(`${base}/stored-`);
    const result = copyEntries(project, ['escape', 'escape/secret', 'secret-link', 'real', 'real/file', '../x'], stored);
    assert.equal(readlinkSync(`${stored}/escape`), host);
    assert.equal(readlinkSync(`${stored}/secret-link`), `${host}/secret`);
    assert.equal(readFileSync(`${stored}/real/file`, 'utf8'), 'ok');
    assert.deepEqual(result.refused, ['../x']);
    // Restoring into a project whose "real" is a symlink to the host must not write through it.
    const victim = mkdtempSync(`${base}/victim-`);
    const next = mkdtempSync(`${base}/next-`);
    symlinkSync(victim, `${next}/real`);
    const restored = copyEntries(stored, ['real', 'real/file'], next);
    assert.ok(!existsSync(`${victim}/file`), 'nothing written through the symlink');
    assert.ok(lstatSync(`${next}/real`).isDirectory(), 'the symlink was replaced by the directory');
    assert.equal(restored.copied, 2);
  });

  test('set-id bits are dropped, the owner is set, stores replace what was there', () => {
    const project = mkdtempSync(`${base}/modes-`);
    writeFileSync(`${project}/tool`, '#!/bin/sh\n', { mode: 0o4755 });
    const target = `${base}/stored-tree`;
    storeTree(project, ['tool'], target, { uid: 1234, gid: 5678 });
    const stats = lstatSync(`${target}/tool`);
    assert.equal(stats.mode & 0o7777, 0o755);
    assert.deepEqual([stats.uid, stats.gid], [1234, 5678]);
    storeTree(project, [], target, { uid: 1234, gid: 5678 });
    assert.ok(!existsSync(`${target}/tool`));
    const into = mkdtempSync(`${base}/into-`);
    assert.equal(restoreTree(`${base}/nothing-here`, into), 0);
  });

  test('dotenv reports, cache key directories and files keys', () => {
    assert.deepEqual(parseDotenv('A=1\nexport B=two words\n# comment\nbad line\nC=\nD=x=y\n'), { A: '1', B: 'two words', C: '', D: 'x=y' });
    assert.equal(cacheDirName('main-node'), 'main-node');
    assert.match(cacheDirName('a/b c'), /^a_b_c-[0-9a-f]{12}$/);
    assert.match(cacheDirName('..'), /^_-[0-9a-f]{12}$/);
    const project = mkdtempSync(`${base}/key-`);
    assert.equal(filesKey(project, ['package-lock.json'], 'npm'), 'npm-default');
    writeFileSync(`${project}/package-lock.json`, '{}');
    const key = filesKey(project, ['package-lock.json'], undefined);
    assert.match(key, /^[0-9a-f]{40}$/);
    writeFileSync(`${project}/package-lock.json`, '{"changed":1}');
    assert.notEqual(filesKey(project, ['package-lock.json'], undefined), key);
  });
});

describe('the checkout', () => {
  test('project paths come from the origin remote', () => {
    assert.equal(projectPathOf('git@gitlab.com:group/sub/app.git', '/x'), 'group/sub/app');
    assert.equal(projectPathOf('https://gitlab.example.com/group/app.git', '/x'), 'group/app');
    assert.equal(projectPathOf('ssh://git@host:2222/group/app', '/x'), 'group/app');
    assert.equal(projectPathOf(undefined, '/home/me/my app'), 'local/my-app');
    assert.equal(projectPathOf('/srv/repos/app.git', '/home/me/app'), 'local/app');
  });

  test('--variable takes NAME=VALUE', () => {
    assert.deepEqual([...parseVariableOptions(['A=1', 'B=x=y', 'C='])], [['A', '1'], ['B', 'x=y'], ['C', '']]);
    assert.throws(() => parseVariableOptions(['A']), /use NAME=VALUE/);
    assert.throws(() => parseVariableOptions(['A-B=1']), /use NAME=VALUE/);
  });

  test('sources are HEAD, detached, shallow; --dirty adds the working tree', async () => {
    const dir = makeCheckout({ 'a.txt': 'one\n', 'gone.txt': 'x\n', '.gitignore': 'ignored.txt\n' }, 'main', base);
    writeFileSync(`${dir}/a.txt`, 'two\n');
    gitIn(dir, ['commit', '-qam', 'second']);
    gitIn(dir, ['checkout', '-q', '-b', 'topic']);
    writeFileSync(`${dir}/a.txt`, 'dirty\n');
    writeFileSync(`${dir}/new.txt`, 'new\n');
    writeFileSync(`${dir}/ignored.txt`, 'ignored\n');
    rmSync(`${dir}/gone.txt`);
    mkdirSync(`${dir}/.nspawn-runner`);
    writeFileSync(`${dir}/.nspawn-runner/variables.yml`, 'SECRET: x\n');
    const repo = await readRepo(`${dir}`);
    assert.equal(repo.branch, 'topic');
    assert.equal(repo.defaultBranch, 'main');
    assert.equal(repo.message, 'second');

    const clean = await makeSources(repo, `${base}/clean`, { dirty: false, depth: 1 });
    assert.equal(readFileSync(`${clean.dir}/a.txt`, 'utf8'), 'two\n');
    assert.ok(existsSync(`${clean.dir}/gone.txt`));
    assert.ok(!existsSync(`${clean.dir}/new.txt`));
    assert.equal(gitIn(clean.dir, ['rev-parse', 'HEAD']), repo.sha);
    assert.equal(gitIn(clean.dir, ['rev-list', '--count', 'HEAD']), '1');
    assert.deepEqual([...clean.tracked].sort(), ['.gitignore', 'a.txt', 'gone.txt']);

    const dirty = await makeSources(repo, `${base}/dirty`, { dirty: true, depth: 20 });
    assert.equal(readFileSync(`${dirty.dir}/a.txt`, 'utf8'), 'dirty\n');
    assert.equal(readFileSync(`${dirty.dir}/new.txt`, 'utf8'), 'new\n');
    assert.ok(!existsSync(`${dirty.dir}/gone.txt`));
    assert.ok(!existsSync(`${dirty.dir}/ignored.txt`));
    assert.ok(!existsSync(`${dirty.dir}/.nspawn-runner`), 'local secrets stay out');
    assert.equal(gitIn(dirty.dir, ['rev-list', '--count', 'HEAD']), '2');
  });

  test('rules:changes compares with the default branch, or HEAD\'s parent on it', async () => {
    const dir = makeCheckout({ 'a.txt': 'a\n' }, 'main', base);
    writeFileSync(`${dir}/b.txt`, 'b\n');
    gitIn(dir, ['add', 'b.txt']);
    gitIn(dir, ['commit', '-qm', 'b on main']);
    assert.deepEqual(changedFiles(await readRepo(dir), undefined, false), ['b.txt']);
    gitIn(dir, ['checkout', '-q', '-b', 'topic']);
    writeFileSync(`${dir}/c.txt`, 'c\n');
    gitIn(dir, ['add', 'c.txt']);
    gitIn(dir, ['commit', '-qm', 'c on topic']);
    writeFileSync(`${dir}/d.txt`, 'd\n');
    const repo = await readRepo(dir);
    assert.deepEqual(changedFiles(repo, undefined, false), ['c.txt']);
    assert.deepEqual(changedFiles(repo, undefined, true), ['c.txt', 'd.txt']);
    assert.equal(changedFiles(repo, 'no-such-ref', false), undefined);
  });

  test('exec --list decides rules: changes and exists on the checkout', async () => {
    const dir = makeCheckout({
      '.gitlab-ci.yml': 'docs:\n  script: [x]\n  rules:\n    - changes: [docs/**/*.md]\n' +
        'code:\n  script: [x]\n  rules:\n    - changes: { paths: [src/*], compare_to: main }\n' +
        'docker:\n  script: [x]\n  rules:\n    - exists: [Dockerfile]\n',
      'docs/index.md': 'v1\n',
    }, 'main', base);
    gitIn(dir, ['checkout', '-q', '-b', 'topic']);
    mkdirSync(`${dir}/docs/deep`);
    writeFileSync(`${dir}/docs/deep/page.md`, 'new\n');
    gitIn(dir, ['add', '-A']);
    gitIn(dir, ['commit', '-qm', 'docs']);
    const list = async (dirty: boolean) => (await loadProject(await loadSettings({ root: base }), {
      cwd: dir, file: '.gitlab-ci.yml', selection: { jobs: [], needs: false, manual: [] }, list: true, json: true,
      concurrency: 1, dirty, variables: [], defaultImage: undefined,
    })).pipeline.jobs.map((job) => job.name);
    assert.deepEqual(await list(false), ['docs']);
    mkdirSync(`${dir}/src`);
    writeFileSync(`${dir}/src/main.c`, '');
    writeFileSync(`${dir}/Dockerfile`, '');
    assert.deepEqual(await list(true), ['docs', 'code', 'docker']);
  });
});
