// exec --list against gitlab-ci-local's --list-json (the npm package, a
// devDependency) on every case of the fixture corpus. Every difference must
// be one listed below with the reason; a new one, or one that went away,
// fails the test. Both leave out jobs whose rules say never.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, describe, test } from 'node:test';
import { checkoutFixture, fixtureNames, gitIn, listFixture, readCases } from '../support/ci-fixtures.mts';
import { repoRoot } from '../support/runner.mts';

const gitlabCiLocal = `${repoRoot}/node_modules/.bin/gitlab-ci-local`;
const root = mkdtempSync(`${tmpdir()}/nsr-exec-gcl-`);
after(() => rmSync(root, { recursive: true, force: true }));

const why = {
  parallelNeeds: 'a need on a parallel job: exec lists the instances it stands for (GitLab waits for each), gitlab-ci-local the name as written; ' +
    'with needs: parallel: matrix: GitLab waits for the instances named only, which gitlab-ci-local does not tell',
  manualMayFail: 'GitLab: a job with when: manual outside rules: may fail unless it says otherwise (allow_failure defaults to true); gitlab-ci-local says false',
  optionalNeed: 'GitLab drops a needs: optional: true on a job that is not in the pipeline; gitlab-ci-local keeps it',
  onlyExcept: 'gitlab-ci-local 4.65 does not evaluate only: and except: (refs, variables); exec does, as GitLab does',
} as const;

/** Differences per fixture and case, as computed below, with their reason. */
const explained: Record<string, Record<string, Array<[difference: string, reason: string]>>> = {
  'node-app': {
    'default branch': [['deploy-staging: allow_failure exec true, gitlab-ci-local false', why.manualMayFail]],
    'feature branch: no pages': [['deploy-staging: allow_failure exec true, gitlab-ci-local false', why.manualMayFail]],
  },
  includes: {
    'other branch: no deploy': [['deploy: only in gitlab-ci-local', why.onlyExcept]],
  },
  dag: {
    'without the optional job': [['deploy: needs exec ["test-a"], gitlab-ci-local ["test-a","optional-job"]', why.optionalNeed]],
  },
  'only-except': {
    main: [
      ['docs: only in gitlab-ci-local', why.onlyExcept],
      ['nightly: only in gitlab-ci-local', why.onlyExcept],
      ['not-on-main: only in gitlab-ci-local', why.onlyExcept],
    ],
    'release branch': [['docs: only in gitlab-ci-local', why.onlyExcept], ['nightly: only in gitlab-ci-local', why.onlyExcept]],
    'feature branch with DOCS=yes': [['deploy: only in gitlab-ci-local', why.onlyExcept], ['nightly: only in gitlab-ci-local', why.onlyExcept]],
    'scheduled pipeline': [['docs: only in gitlab-ci-local', why.onlyExcept], ['not-on-main: only in gitlab-ci-local', why.onlyExcept]],
  },
  parallel: {
    main: [['test 1/3: needs exec ["build: [amd64, linux]"], gitlab-ci-local ["build"]', why.parallelNeeds],
      ['test 2/3: needs exec ["build: [amd64, linux]"], gitlab-ci-local ["build"]', why.parallelNeeds],
      ['test 3/3: needs exec ["build: [amd64, linux]"], gitlab-ci-local ["build"]', why.parallelNeeds]],
  },
};

/**
 * gitlab-ci-local's names of parallel jobs, as GitLab writes them: "job 1/3"
 * where it writes "job: [1/3]", "job: [a, b]" where it writes "job: [a,b]".
 * Only the spelling differs, so names are compared after this.
 */
export function gitlabName(name: string): string {
  const numbered = /^(.*): \[(\d+\/\d+)\]$/.exec(name);
  if (numbered) return `${numbered[1]} ${numbered[2]}`;
  return name.replace(/: \[(.*)\]$/, (_, values: string) => `: [${values.split(',').map((value) => value.trim()).join(', ')}]`);
}

/** A need on every instance of a parallel job, as gitlab-ci-local lists it: the job's name once. */
function collapseInstances(needs: readonly string[], instances: ReadonlyMap<string, readonly string[]>): string[] {
  const collapsed = needs.map((need) => {
    for (const [base, names] of instances) if (names.includes(need) && names.every((name) => needs.includes(name))) return base;
    return need;
  });
  return [...new Set(collapsed)];
}

interface Row { stage: string; when: string; allow_failure: unknown; needs: string[] | null }

function runGitlabCiLocal(dir: string, variables: Record<string, string>): { code: number; jobs?: Map<string, Row>; output: string } {
  const home = mkdtempSync(`${root}/home-`);
  const args = ['--list-json', '--json-schema-validation=false', `--ignore-predefined-vars=${Object.keys(variables).join(',')}`,
    ...Object.entries(variables).flatMap(([key, value]) => ['--variable', `${key}=${value}`])];
  const result = spawnSync(gitlabCiLocal, args, { cwd: dir, encoding: 'utf8', env: { ...process.env, HOME: home, NO_COLOR: '1' } });
  const output = `${result.stdout}${result.stderr}`;
  if (result.status !== 0) return { code: result.status ?? -1, output };
  const listed = JSON.parse(result.stdout.slice(result.stdout.search(/^\[/m))) as Array<{ name: string; stage: string; when: string; allow_failure: unknown; needs?: Array<{ job: string }> }>;
  const jobs = new Map(listed.filter((job) => job.when !== 'never').map((job) => [gitlabName(job.name), {
    stage: job.stage, when: job.when, allow_failure: job.allow_failure, needs: job.needs ? job.needs.map((need) => need.job) : null,
  }]));
  return { code: 0, jobs, output };
}

/** A copy of the checkout without the includes gitlab-ci-local cannot fetch here (no network): it fails on them. */
function withoutUnreadableIncludes(dir: string): void {
  const file = `${dir}/.gitlab-ci.yml`;
  writeFileSync(file, readFileSync(file, 'utf8').split('\n').filter((line) => !/^\s*- (remote|template):/.test(line)).join('\n'));
  gitIn(dir, ['commit', '-qam', 'without remote includes']);
}

for (const name of fixtureNames()) {
  describe(`fixture ${name} against gitlab-ci-local`, () => {
    for (const fixtureCase of readCases(name)) {
      test(fixtureCase.case, async () => {
        const dir = checkoutFixture(name, fixtureCase.branch);
        try {
          const ours = await listFixture(root, fixtureCase, dir);
          let theirs = runGitlabCiLocal(dir, fixtureCase.variables ?? {});
          if (name === 'includes') {
            // Where exec names the remote and template includes in a warning and goes on, gitlab-ci-local stops.
            assert.notEqual(theirs.code, 0);
            assert.match(theirs.output, /Remote include could not be fetched/);
            withoutUnreadableIncludes(dir);
            theirs = runGitlabCiLocal(dir, fixtureCase.variables ?? {});
          }
          assert.equal(theirs.code, 0, theirs.output);
          const instances = new Map<string, string[]>();
          for (const job of ours.jobs) {
            const base = /^(.*?)(?:: \[.*\]| \d+\/\d+)$/.exec(job.name)?.[1];
            if (base !== undefined) instances.set(base, [...(instances.get(base) ?? []), job.name]);
          }
          const differences: string[] = [];
          for (const job of ours.jobs) {
            const other = theirs.jobs!.get(job.name);
            if (!other) {
              differences.push(`${job.name}: only in exec`);
              continue;
            }
            const mine: Row = { stage: job.stage, when: job.when, allow_failure: job.allow_failure, needs: job.needs && collapseInstances(job.needs, instances) };
            for (const field of ['stage', 'when', 'allow_failure', 'needs'] as const) {
              const [a, b] = [JSON.stringify(mine[field]), JSON.stringify(other[field])];
              if (a !== b) differences.push(`${job.name}: ${field} exec ${a}, gitlab-ci-local ${b}`);
            }
          }
          for (const job of theirs.jobs!.keys()) if (!ours.jobs.some((mine) => mine.name === job)) differences.push(`${job}: only in gitlab-ci-local`);
          const expected = explained[name]?.[fixtureCase.case] ?? [];
          assert.deepEqual(differences.sort(), expected.map(([difference]) => difference).sort());
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  });
}

test('gitlab-ci-local names parallel jobs differently, only in spelling', () => {
  assert.equal(gitlabName('test: [1/3]'), 'test 1/3');
  assert.equal(gitlabName('build: [amd64,linux]'), 'build: [amd64, linux]');
  assert.equal(gitlabName('plain'), 'plain');
});
