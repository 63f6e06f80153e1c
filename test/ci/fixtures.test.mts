// The fixture corpus (test/fixtures/gitlab-ci/): exec --list must give, for
// each case, the jobs, stages, when, allow_failure and needs that GitLab's
// semantics give, in GitLab's order (by stage, then as written).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, describe, test } from 'node:test';
import { checkoutFixture, fixtureNames, listFixture, readCases } from '../support/ci-fixtures.mts';

const root = mkdtempSync(`${tmpdir()}/nsr-exec-list-`);
after(() => rmSync(root, { recursive: true, force: true }));


for (const name of fixtureNames()) {
  describe(`fixture ${name}`, () => {
    for (const fixtureCase of readCases(name)) {
      test(fixtureCase.case, async () => {
        const dir = checkoutFixture(name, fixtureCase.branch);
        try {
          const { jobs } = await listFixture(root, fixtureCase, dir);
          assert.deepEqual(jobs.map((job) => [job.name, job.stage, job.when, job.allow_failure, job.needs]), fixtureCase.jobs);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  });
}

test('the unsupported keys of the corpus are named in the warnings', async () => {
  const expectations: Record<string, string[]> = {
    extends: ['retry (job unit)'],
    includes: ['include:remote https://gitlab.example.com/templates/security.yml', 'include:template Jobs/SAST.gitlab-ci.yml'],
    'node-app': [],
  };
  for (const [name, warnings] of Object.entries(expectations)) {
    const fixtureCase = readCases(name)[0]!;
    const dir = checkoutFixture(name, fixtureCase.branch);
    try {
      assert.deepEqual((await listFixture(root, fixtureCase, dir)).warnings, warnings, name);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});
