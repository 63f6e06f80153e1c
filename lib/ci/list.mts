// `exec --list`: the pipeline's jobs in the order GitLab shows them (by
// stage, then as written), with when, allow_failure and needs; as a table
// for people or as JSON for scripts (and for the comparison with
// gitlab-ci-local's --list-json).
import type { AllowFailure, Pipeline } from './model.mts';

export interface ListedJob {
  name: string;
  stage: string;
  when: string;
  allow_failure: boolean | { exit_codes: readonly number[] };
  needs: string[] | null;
}

function allowFailureValue(allow: AllowFailure): ListedJob['allow_failure'] {
  return allow.exitCodes ? { exit_codes: allow.exitCodes } : allow.allowed;
}

export function listJobs(pipeline: Pipeline): ListedJob[] {
  return pipeline.jobs.map((job) => ({
    name: job.name,
    stage: job.stage,
    when: job.when,
    allow_failure: allowFailureValue(job.allowFailure),
    needs: job.needs ? job.needs.map((need) => need.job) : null,
  }));
}

export function formatListRows(jobs: readonly ListedJob[]): string[][] {
  return jobs.map((job) => [
    job.name,
    job.stage,
    job.when,
    typeof job.allow_failure === 'boolean' ? String(job.allow_failure) : `exit_codes ${job.allow_failure.exit_codes.join(',')}`,
    job.needs === null ? '' : `[${job.needs.join(', ')}]`,
  ]);
}

export const listHeader = ['name', 'stage', 'when', 'allow_failure', 'needs'] as const;
