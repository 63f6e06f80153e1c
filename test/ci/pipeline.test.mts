// The .gitlab-ci.yml model on small configurations: what GitLab makes of
// them, and the one-line errors (file:line:col) for what it refuses.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Pipeline } from '../../lib/ci/model.mts';
import { loadPipeline } from '../../lib/ci/pipeline.mts';
import { expandVariables, mergeVariables, variablesFrom } from '../../lib/ci/variables.mts';
import { CiConfigError } from '../../lib/ci/yaml-source.mts';

const base = mkdtempSync(`${tmpdir()}/nsr-ci-`);
after(() => rmSync(base, { recursive: true, force: true }));
let count = 0;

const branchPipeline = { CI_COMMIT_BRANCH: 'main', CI_COMMIT_REF_NAME: 'main', CI_PIPELINE_SOURCE: 'push', CI_DEFAULT_BRANCH: 'main', CI_PROJECT_PATH: 'group/app' };

function pipelineOf(files: Record<string, string> | string, overrides: Record<string, string> = {}): Pipeline {
  const dir = `${base}/${++count}`;
  for (const [path, content] of Object.entries(typeof files === 'string' ? { '.gitlab-ci.yml': files } : files)) {
    mkdirSync(dirname(`${dir}/${path}`), { recursive: true });
    writeFileSync(`${dir}/${path}`, content);
  }
  return loadPipeline({ projectDir: dir, file: '.gitlab-ci.yml', predefined: branchPipeline, overrides: variablesFrom(overrides) });
}

function job(pipeline: Pipeline, name: string) {
  const found = pipeline.jobs.find((candidate) => candidate.name === name);
  assert.ok(found, `no job ${name} in ${pipeline.jobs.map((candidate) => candidate.name).join(', ')}`);
  return found;
}

/** The job's YAML variables, expanded as the runner would with the pipeline's predefined ones below. */
function variablesOf(pipeline: Pipeline, name: string): Record<string, string> {
  return Object.fromEntries(expandVariables(mergeVariables(variablesFrom(branchPipeline), job(pipeline, name).variables)));
}

function refuses(files: Record<string, string> | string, message: RegExp): void {
  assert.throws(() => pipelineOf(files), (error: Error) => {
    assert.ok(error instanceof CiConfigError, `${error.name}: ${error.message}`);
    // As the user reads it: the message, then the hint.
    const shown = error.hint ? `${error.message} (${error.hint})` : error.message;
    assert.match(shown, message);
    assert.ok(!shown.includes('\n'), 'one line');
    return true;
  });
}

describe('extends, default and inherit', () => {
  test('multi-level and list extends merge hashes key by key and replace everything else', () => {
    const pipeline = pipelineOf(`
.a:
  variables: { A: a, B: a }
  script: [from-a]
  tags: [x]
.b:
  extends: .a
  variables: { B: b }
  before_script: [before-b]
.c:
  variables: { C: c, A: c }
  script: [from-c]
job:
  extends: [.b, .c]
  variables: { D: d }
`);
    const found = job(pipeline, 'job');
    assert.deepEqual(found.definition.script, ['from-c']);
    assert.deepEqual(found.definition.beforeScript, ['before-b']);
    assert.deepEqual(Object.fromEntries([...found.variables].map(([key, value]) => [key, value.value])), { A: 'c', B: 'b', C: 'c', D: 'd' });
  });

  test('default: fills what the job lacks after extends; inherit: takes none or some', () => {
    const pipeline = pipelineOf(`
default:
  image: alpine
  before_script: [default-before]
  after_script: [default-after]
variables: { G1: one, G2: two }
.template:
  before_script: [template-before]
plain:
  script: [x]
templated:
  extends: .template
  script: [x]
no-defaults:
  inherit: { default: false, variables: [G2] }
  script: [x]
some-defaults:
  inherit: { default: [image] }
  script: [x]
`);
    assert.equal(job(pipeline, 'plain').definition.image?.name, 'alpine');
    assert.deepEqual(job(pipeline, 'plain').definition.afterScript, ['default-after']);
    assert.deepEqual(job(pipeline, 'templated').definition.beforeScript, ['template-before']);
    assert.equal(job(pipeline, 'no-defaults').definition.image, undefined);
    assert.deepEqual(job(pipeline, 'no-defaults').definition.beforeScript, []);
    assert.deepEqual([...job(pipeline, 'no-defaults').variables.keys()], ['G2']);
    assert.equal(job(pipeline, 'some-defaults').definition.image?.name, 'alpine');
    assert.deepEqual(job(pipeline, 'some-defaults').definition.beforeScript, []);
    assert.deepEqual([...job(pipeline, 'plain').variables.keys()], ['G1', 'G2']);
  });

  test('a cycle in extends names the cycle', () => {
    refuses('.a:\n  extends: .b\n.b:\n  extends: .a\njob:\n  extends: .a\n  script: [x]\n', /^\.gitlab-ci\.yml:\d+:\d+: circular extends: (\.a -> \.b -> \.a|\.b -> \.a -> \.b)$/);
    refuses('job:\n  extends: job\n  script: [x]\n', /:2:3: circular extends: job -> job$/);
    refuses('job:\n  extends: .missing\n  script: [x]\n', /:2:3: job job: extends unknown job \.missing \(jobs and hidden jobs: job\)$/);
  });
});

describe('!reference', () => {
  test('script lines, rules and variables, nested references and lists flattened', () => {
    const pipeline = pipelineOf(`
.one:
  script: [one-a, one-b]
.two:
  script:
    - !reference [.one, script]
    - two
.vars:
  variables: { R: from-ref }
job:
  variables: !reference [.vars, variables]
  script:
    - !reference [.two, script]
    - own
`);
    assert.deepEqual(job(pipeline, 'job').definition.script, ['one-a', 'one-b', 'two', 'own']);
    assert.equal(variablesOf(pipeline, 'job').R, 'from-ref');
  });

  test('a reference to nothing, or a circular one, is named', () => {
    refuses('job:\n  script:\n    - !reference [.nope, script]\n', /^\.gitlab-ci\.yml:3:18: !reference \[\.nope, script\] could not be found$/);
    refuses('.a:\n  x: !reference [.b, x]\n.b:\n  x: !reference [.a, x]\njob:\n  script: !reference [.a, x]\n', /circular chain/);
    refuses('job:\n  script: !reference scalar\n', /!reference takes a sequence/);
  });
});

describe('include: local', () => {
  test('files and globs, nested, merged in order, the including file last', () => {
    const pipeline = pipelineOf({
      '.gitlab-ci.yml': 'include:\n  - ci/one.yml\n  - local: /ci/more/*.yml\nvariables: { WHO: main }\njob:\n  variables: { V: main }\n',
      'ci/one.yml': 'include: ci/two.yml\njob:\n  script: [from-one]\n  variables: { V: one, W: one }\n',
      'ci/two.yml': 'variables: { WHO: two, TWO: two }\n',
      'ci/more/a.yml': 'a:\n  script: [a]\n',
      'ci/more/b.yml': 'b:\n  script: [b]\n',
    });
    assert.deepEqual(pipeline.jobs.map((found) => found.name), ['job', 'a', 'b']);
    assert.deepEqual(job(pipeline, 'job').definition.script, ['from-one']);
    const variables = variablesOf(pipeline, 'job');
    assert.equal(variables.V, 'main');
    assert.equal(variables.W, 'one');
    assert.equal(variables.WHO, 'main');
    assert.equal(variables.TWO, 'two');
  });

  test('include: rules: if decides with the pipeline variables', () => {
    const files = { '.gitlab-ci.yml': 'include:\n  - local: extra.yml\n    rules:\n      - if: $EXTRA == "yes"\nmain:\n  script: [x]\n', 'extra.yml': 'extra:\n  script: [x]\n' };
    assert.deepEqual(pipelineOf(files).jobs.map((found) => found.name), ['main']);
    // Included jobs come first: the including file is merged over them.
    assert.deepEqual(pipelineOf(files, { EXTRA: 'yes' }).jobs.map((found) => found.name), ['extra', 'main']);
  });

  test('a missing include names the file; remote ones are warned about', () => {
    refuses('include: ci/missing.yml\njob:\n  script: [x]\n', /^\.gitlab-ci\.yml:1:1: included file ci\/missing\.yml does not exist$/);
    refuses({ '.gitlab-ci.yml': 'include: a.yml\n', 'a.yml': 'include:\n  - local: b.yml\n' }, /^a\.yml:2:5: included file b\.yml does not exist$/);
    refuses('include: ../outside.yml\n', /outside the project/);
    const pipeline = pipelineOf('include:\n  - https://example.org/ci.yml\n  - project: group/templates\n    file: ci.yml\n  - component: example.org/c/d@1\njob:\n  script: [x]\n');
    assert.deepEqual(pipeline.warnings, ['include:remote https://example.org/ci.yml', 'include:project group/templates', 'include:component example.org/c/d@1']);
  });
});

describe('variables', () => {
  test('expanded as the runner does: $X, ${X}, $$, unknown names empty, expand: false kept, loops stopped', () => {
    const pipeline = pipelineOf(`
variables:
  A: a
  B: "$A-\${A}-$$A-$UNKNOWN-end"
  RAW: { value: "$A", expand: false }
  DESCRIBED: { value: "x", description: "shown in the UI" }
  LOOP1: "$LOOP2"
  LOOP2: "$LOOP1"
  NUMBER: 1.10
job:
  script: [x]
  variables:
    A: job-a
`);
    const variables = variablesOf(pipeline, 'job');
    assert.equal(variables.B, 'job-a-job-a-$A--end');
    assert.equal(variables.RAW, '$A');
    assert.equal(variables.DESCRIBED, 'x');
    assert.equal(variables.LOOP1, '');
    // YAML 1.1 reads 1.10 as a number, as GitLab does: quote versions.
    assert.equal(variables.NUMBER, '1.1');
  });

  test('bad variables are refused with their place', () => {
    refuses('variables:\n  "A-B": x\njob:\n  script: [x]\n', /^\.gitlab-ci\.yml:2:3: variables: invalid variable name "A-B"/);
    refuses('variables:\n  A: [1, 2]\njob:\n  script: [x]\n', /variables: A must be a string or a number/);
  });
});

describe('rules, only/except and when', () => {
  const config = `
stages: [build, test, deploy]
variables: { MODE: fast }
fast:
  script: [x]
  rules:
    - if: $MODE == "fast"
      variables: { MODE: faster }
slow:
  script: [x]
  rules:
    - if: $MODE == "slow"
manual:
  stage: deploy
  script: [x]
  when: manual
manual-rule:
  stage: deploy
  script: [x]
  rules:
    - when: manual
on-main:
  stage: build
  script: [x]
  only: [main]
`;

  test('the first matching rule decides, and its variables win over the job\'s', () => {
    const pipeline = pipelineOf(config);
    assert.deepEqual(pipeline.jobs.map((found) => found.name), ['on-main', 'fast', 'manual', 'manual-rule']);
    assert.equal(variablesOf(pipeline, 'fast').MODE, 'faster');
    assert.deepEqual(pipelineOf(config, { MODE: 'slow' }).jobs.map((found) => found.name), ['on-main', 'slow', 'manual', 'manual-rule']);
  });

  test('a manual job may fail by default, unless its manual comes from rules', () => {
    const pipeline = pipelineOf(config);
    assert.deepEqual(job(pipeline, 'manual').allowFailure, { allowed: true });
    assert.deepEqual(job(pipeline, 'manual-rule').allowFailure, { allowed: false });
  });

  test('only: refs follow CI_COMMIT_REF_NAME', () => {
    assert.ok(!pipelineOf(config, { CI_COMMIT_REF_NAME: 'topic', CI_COMMIT_BRANCH: 'topic' }).jobs.some((found) => found.name === 'on-main'));
  });

  test('workflow: rules can leave no pipeline', () => {
    const blocked = pipelineOf('workflow:\n  rules:\n    - if: $CI_COMMIT_TAG\njob:\n  script: [x]\n');
    assert.equal(blocked.workflowBlocked, 'no workflow:rules rule matches');
    assert.equal(pipelineOf('workflow:\n  rules:\n    - if: $CI_COMMIT_TAG\n      when: never\n    - when: always\njob:\n  script: [x]\n').workflowBlocked, undefined);
  });

  test('bad rules are refused', () => {
    refuses('job:\n  script: [x]\n  rules:\n    - if: $A == "x" &&\n', /^\.gitlab-ci\.yml:4:7: job job: rules: if: invalid expression .*ends early/);
    refuses('job:\n  script: [x]\n  rules:\n    - iff: $A\n', /:4:7: job job: rules: unknown key iff$/);
    refuses('job:\n  script: [x]\n  rules: [{ when: later }]\n', /when must be one of/);
    refuses('job:\n  script: [x]\n  rules: [{ when: never }]\n  only: [main]\n', /rules: cannot be used with only: or except:/);
    refuses('job:\n  script: [x]\n  when: never\n', /when: never is only allowed in rules:/);
  });
});

describe('parallel', () => {
  test('parallel: N and matrix give GitLab\'s names and node indexes', () => {
    const pipeline = pipelineOf(`
n:
  script: [x]
  parallel: 2
m:
  script: [x]
  parallel:
    matrix:
      - PROVIDER: aws
        STACK: [monitoring, app1]
      - PROVIDER: [gcp, vultr]
        STACK: data
`);
    assert.deepEqual(pipeline.jobs.map((found) => found.name), [
      'n 1/2', 'n 2/2', 'm: [aws, monitoring]', 'm: [aws, app1]', 'm: [gcp, data]', 'm: [vultr, data]',
    ]);
    assert.deepEqual(job(pipeline, 'm: [gcp, data]').predefined, { CI_JOB_NAME: 'm: [gcp, data]', CI_JOB_NAME_SLUG: 'm---gcp--data', CI_JOB_STAGE: 'test', CI_NODE_INDEX: '3', CI_NODE_TOTAL: '4' });
    assert.equal(variablesOf(pipeline, 'm: [gcp, data]').PROVIDER, 'gcp');
  });

  test('rules see the matrix variables', () => {
    const pipeline = pipelineOf('m:\n  script: [x]\n  parallel:\n    matrix:\n      - OS: [linux, windows]\n  rules:\n    - if: $OS == "linux"\n');
    assert.deepEqual(pipeline.jobs.map((found) => found.name), ['m: [linux]']);
  });

  test('limits', () => {
    refuses('job:\n  script: [x]\n  parallel: 201\n', /parallel must be a number from 1 to 200/);
    refuses('job:\n  script: [x]\n  parallel:\n    matrix:\n      - A: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]\n        B: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]\n', /makes 225 jobs, more than 200/);
  });
});

describe('needs and dependencies', () => {
  test('dependencies default to every earlier stage, or to the needs with artifacts', () => {
    const pipeline = pipelineOf(`
stages: [a, b]
one: { stage: a, script: [x] }
two: { stage: a, script: [x] }
all: { stage: b, script: [x] }
some: { stage: b, script: [x], needs: [one, { job: two, artifacts: false }] }
named: { stage: b, script: [x], dependencies: [two] }
none: { stage: b, script: [x], dependencies: [] }
`);
    assert.deepEqual(job(pipeline, 'all').dependencies, ['one', 'two']);
    assert.deepEqual(job(pipeline, 'some').dependencies, ['one']);
    assert.deepEqual(job(pipeline, 'named').dependencies, ['two']);
    assert.deepEqual(job(pipeline, 'none').dependencies, []);
    assert.deepEqual(job(pipeline, 'all').needs, undefined);
  });

  test('bad needs are refused, cycles named', () => {
    refuses('a:\n  script: [x]\n  needs: [b]\nb:\n  script: [x]\n  needs: [c]\nc:\n  script: [x]\n  needs: [a]\n', /^\.gitlab-ci\.yml:1:1: needs cycle: a -> b -> c -> a$/);
    refuses('a:\n  script: [x]\n  needs: [zz]\n', /^\.gitlab-ci\.yml:3:3: job a needs zz, which is not defined \(jobs: a\)$/);
    refuses('a:\n  stage: build\n  script: [x]\n  needs: [b]\nb:\n  script: [x]\n', /job a needs b, which is in the later stage test/);
    refuses('a:\n  script: [x]\n  needs: [b]\nb:\n  script: [x]\n  rules: [{ if: $NOPE }]\n', /job a needs b, which rules or only\/except leave out of this pipeline \(make the need optional: true/);
    refuses('a:\n  stage: build\n  script: [x]\nb:\n  script: [x]\n  needs: []\n  dependencies: [a]\n', /job b depends on a, which is not in its needs:/);
    refuses('a:\n  script: [x]\nb:\n  script: [x]\n  dependencies: [a]\n', /job b depends on a, which is not in an earlier stage/);
  });
});

describe('services', () => {
  /** A job's services as plain data: the variables as name -> value. */
  const servicesOf = (pipeline: Pipeline, name: string) => job(pipeline, name).definition.services.map(({ at, variables, ...service }) =>
    ({ ...service, ...(variables.size ? { variables: Object.fromEntries([...variables].map(([key, variable]) => [key, variable.value])) } : {}) }));

  test('strings and mappings, as written (expanded when the job runs); default: and top-level services: are inherited', () => {
    const cases: Array<[string, ReturnType<typeof servicesOf>]> = [
      ['services: [postgres:16, "$REGISTRY/redis:7"]', [{ name: 'postgres:16' }, { name: '$REGISTRY/redis:7' }]],
      [`services:
    - name: busybox
      alias: web, www
      entrypoint: [httpd]
      command: ["-f", "-p", "8080"]
      variables: { PORT: "8080", URL: "http://$HOST", N: 5 }
      pull_policy: [always, if-not-present]
      docker: { platform: linux/amd64, user: nobody }`, [{
        name: 'busybox', alias: 'web, www', entrypoint: ['httpd'], command: ['-f', '-p', '8080'],
        pullPolicy: ['always', 'if-not-present'], variables: { PORT: '8080', URL: 'http://$HOST', N: '5' },
      }]],
      ['services: [{ name: db, pull_policy: never, entrypoint: [], alias: null }]', [{ name: 'db', pullPolicy: ['never'], entrypoint: [] }]],
      ['services: []', []],
      ['services: null', []],
      ['script: [x]', []],
    ];
    for (const [yaml, expected] of cases) assert.deepEqual(servicesOf(pipelineOf(`job:\n  script: [x]\n  ${yaml}\n`), 'job'), expected, yaml);
    const inherited = pipelineOf('default:\n  services: [redis]\nservices: [old]\na:\n  script: [x]\nb:\n  services: [own]\n  script: [x]\n' +
      'c:\n  inherit: { default: false }\n  script: [x]\nd:\n  services: []\n  script: [x]\n');
    assert.deepEqual(['a', 'b', 'c', 'd'].map((name) => servicesOf(inherited, name)), [[{ name: 'redis' }], [{ name: 'own' }], [], []]);
    assert.deepEqual(servicesOf(pipelineOf('services: [old]\njob:\n  script: [x]\n'), 'job'), [{ name: 'old' }]);
    assert.deepEqual(servicesOf(pipelineOf('.db:\n  services: [{ name: postgres, alias: db }]\njob:\n  extends: .db\n  script: [x]\n'), 'job'),
      [{ name: 'postgres', alias: 'db' }]);
  });

  test('bad shapes are refused where they were written', () => {
    const cases: Array<[string, RegExp]> = [
      ['services: postgres', /^\.gitlab-ci\.yml:3:3: job job: services must be a list of images or mappings with name:$/],
      ['services: { name: postgres }', /^\.gitlab-ci\.yml:3:13: job job: services must be a list/],
      ['services: [""]', /^\.gitlab-ci\.yml:3:13: job job: services: each service is an image name or a mapping with name:$/],
      ['services: [5]', /:3:13: job job: services: each service is an image name or a mapping with name:$/],
      ['services: [[postgres]]', /:3:14: job job: services: each service is an image name/],
      ['services:\n    - alias: db', /^\.gitlab-ci\.yml:4:7: job job: services: a service needs name: \(its image\)$/],
      ['services:\n    - { name: "" }', /:4:9: job job: services: a service needs name:/],
      ['services:\n    - name: db\n      ports: [5432]', /^\.gitlab-ci\.yml:5:7: job job: services: unknown key ports \(a service takes name, alias, /],
      ['services:\n    - name: db\n      alias: [a, b]', /^\.gitlab-ci\.yml:5:7: job job: services: db: alias must be a string$/],
      ['services:\n    - name: db\n      command: postgres -c fsync=off', /^\.gitlab-ci\.yml:5:7: job job: services: db: command must be a list of strings$/],
      ['services:\n    - name: db\n      entrypoint: [sh, 1]', /^\.gitlab-ci\.yml:5:19: job job: services: db: entrypoint must be a list of strings$/],
      ['services:\n    - name: db\n      pull_policy: sometimes', /^\.gitlab-ci\.yml:5:7: job job: services: db: pull_policy must be always, never, if-not-present or a list of them$/],
      ['services:\n    - name: db\n      variables: [A]', /^\.gitlab-ci\.yml:5:18: job job: services: db: variables must be a mapping of names to values$/],
      ['services:\n    - name: db\n      variables: { A-B: x }', /^\.gitlab-ci\.yml:5:20: job job: services: db: variables: invalid variable name "A-B"/],
    ];
    for (const [yaml, message] of cases) refuses(`job:\n  script: [x]\n  ${yaml}\n`, message);
    refuses('default:\n  services: [{ alias: db }]\njob:\n  script: [x]\n', /^\.gitlab-ci\.yml:2:14: job job: services: a service needs name:/);
  });
});

describe('the YAML itself', () => {
  test('syntax errors say file:line:col', () => {
    refuses('job:\n  script: [x\nother: 1\n', /^\.gitlab-ci\.yml:3:1: invalid YAML: /);
    refuses('job:\n\tscript: x\n', /^\.gitlab-ci\.yml:2:1: invalid YAML/);
    refuses('- a\n- b\n', /the configuration must be a mapping/);
  });

  test('YAML 1.1 as GitLab reads it: << merges, duplicate keys (the last wins), y and n are strings', () => {
    const pipeline = pipelineOf('.t: &t\n  stage: build\n  script: [t]\njob:\n  <<: *t\n  script: [own]\n  variables: { Y: y, N: n, ON: on }\n  variables: { Y: y, N: n, YES: yes }\n');
    const found = job(pipeline, 'job');
    assert.equal(found.stage, 'build');
    assert.deepEqual(found.definition.script, ['own']);
    const { Y, N, ON, YES } = variablesOf(pipeline, 'job');
    assert.deepEqual({ Y, N, ON, YES }, { Y: 'y', N: 'n', ON: undefined, YES: 'true' });
  });

  test('unknown keys are errors, keys GitLab knows but exec cannot honour are warnings', () => {
    refuses('job:\n  script: [x]\n  scirpt: [y]\n', /^\.gitlab-ci\.yml:3:3: job job: unknown key scirpt$/);
    refuses('job:\n  script: [x]\n  artifacts:\n    pathz: [a]\n', /job job: artifacts: unknown key pathz/);
    refuses('job:\n  stage: nope\n  script: [x]\n', /job job: stage nope is not in stages: \(stages: \.pre, build, test, deploy, \.post\)/);
    refuses('job:\n  image: debian\n', /^\.gitlab-ci\.yml:1:1: job job has no script:/);
    refuses('job: [x]\n', /job job must be a mapping/);
    const pipeline = pipelineOf('a:\n  script: [x]\n  services: [postgres]\n  retry: 2\n  artifacts:\n    reports: { junit: r.xml }\nb:\n  script: [x]\n  resource_group: r\nt:\n  trigger: other/project\n');
    assert.deepEqual(pipeline.warnings, ['retry (job a)', 'artifacts:reports:junit (job a)', 'resource_group (job b)', 'trigger (job t)']);
  });
});
