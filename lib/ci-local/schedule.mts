// Which jobs of the pipeline run, in what order, and whether each one's turn
// means running it: GitLab's rules for a pipeline, applied to the jobs
// selected. A job with needs: waits for those jobs; any other waits for
// every selected job of the earlier stages. Then its `when` decides:
// on_success runs when nothing it waited for failed (a failure that may fail
// does not count), on_failure only when something did, always in any case,
// manual only when asked for by name. At most `concurrency` jobs run at once.
import type { CiJob, Pipeline } from '../ci/model.mts';
import { CiConfigError } from '../ci/yaml-source.mts';
import type { JobResult } from './run-job.mts';

export interface Selection {
  jobs: readonly string[];
  /** With the jobs named: also what they need, transitively. */
  needs: boolean;
  stage?: string;
  /** Manual jobs to run as if played. */
  manual: readonly string[];
}

export interface Plan {
  jobs: readonly CiJob[];
  /** Jobs run even though manual. */
  played: ReadonlySet<string>;
}

/** The jobs a selection means; unknown names are errors that list what there is. */
export function planJobs(pipeline: Pipeline, selection: Selection): Plan {
  const byName = new Map(pipeline.jobs.map((job) => [job.name, job]));
  const resolve = (name: string): CiJob[] => {
    const exact = byName.get(name);
    if (exact) return [exact];
    const instances = pipeline.jobs.filter((job) => job.definition.name === name);
    if (instances.length) return instances;
    throw new CiConfigError(`no job ${JSON.stringify(name)} in this pipeline`, undefined, `jobs: ${pipeline.jobs.map((job) => job.name).join(', ') || 'none'}`);
  };
  const played = new Set<string>();
  for (const name of selection.manual) for (const job of resolve(name)) played.add(job.name);
  let chosen: Set<CiJob>;
  if (selection.stage !== undefined) {
    if (!pipeline.stages.includes(selection.stage)) {
      throw new CiConfigError(`no stage ${JSON.stringify(selection.stage)}`, undefined, `stages: ${pipeline.stages.join(', ')}`);
    }
    chosen = new Set(pipeline.jobs.filter((job) => job.stage === selection.stage));
  } else if (selection.jobs.length > 0) {
    chosen = new Set(selection.jobs.flatMap(resolve));
    for (const job of chosen) played.add(job.name);
    if (selection.needs) {
      const queue = [...chosen];
      while (queue.length) {
        for (const need of queue.shift()!.needs ?? []) {
          const needed = byName.get(need.job)!;
          if (!chosen.has(needed)) {
            chosen.add(needed);
            queue.push(needed);
          }
        }
      }
    }
  } else {
    chosen = new Set(pipeline.jobs);
  }
  return { jobs: pipeline.jobs.filter((job) => chosen.has(job)), played };
}

/** The jobs a job waits for, among those that run. */
export function prerequisites(job: CiJob, jobs: readonly CiJob[]): string[] {
  const names = new Set(jobs.map((other) => other.name));
  if (job.needs) return job.needs.map((need) => need.job).filter((name) => names.has(name));
  return jobs.filter((other) => other.stageIndex < job.stageIndex).map((other) => other.name);
}

export type Decision = { run: true } | { run: false; status: JobResult['status']; note: string };

/** Whether a job whose prerequisites have all finished runs. */
export function decide(job: CiJob, prerequisiteResults: ReadonlyArray<readonly [string, JobResult]>, plan: Plan, canceled: boolean): Decision {
  if (canceled) return { run: false, status: 'canceled', note: 'the run was interrupted' };
  const failed = prerequisiteResults.filter(([, result]) => (result.status === 'failed' && !result.allowed) || result.status === 'canceled');
  const blocking = prerequisiteResults.filter(([name, result]) =>
    (result.status === 'manual' && !plan.jobs.find((other) => other.name === name)?.allowFailure.allowed) ||
    // A need that did not run leaves the job nothing to start from.
    (job.needs !== undefined && (result.status === 'skipped' || result.status === 'manual')));
  switch (job.when) {
    case 'always':
      return { run: true };
    case 'on_failure':
      return failed.length ? { run: true } : { run: false, status: 'skipped', note: 'when: on_failure, and nothing failed' };
    case 'manual':
      if (!plan.played.has(job.name)) return { run: false, status: 'manual', note: 'manual: name it, or pass --manual, to run it' };
      return { run: true };
    default:
      if (failed.length) return { run: false, status: 'skipped', note: `${failed.map(([name]) => name).join(', ')} failed` };
      if (blocking.length) return { run: false, status: 'skipped', note: `${blocking.map(([name]) => name).join(', ')} did not run` };
      return { run: true };
  }
}

export interface ScheduleHooks {
  run: (job: CiJob) => Promise<JobResult>;
  skip: (job: CiJob, decision: Extract<Decision, { run: false }>) => void;
  canceled: () => boolean;
}

/** Runs the plan; returns every job's result in plan order. */
export async function runPlan(plan: Plan, concurrency: number, hooks: ScheduleHooks): Promise<Map<string, JobResult>> {
  const results = new Map<string, JobResult>();
  const pending = [...plan.jobs];
  const running = new Map<string, Promise<void>>();
  while (pending.length > 0 || running.size > 0) {
    const before = pending.length;
    for (let index = 0; index < pending.length && running.size < concurrency;) {
      const job = pending[index]!;
      const waitsFor = prerequisites(job, plan.jobs);
      if (!waitsFor.every((name) => results.has(name))) {
        index++;
        continue;
      }
      pending.splice(index, 1);
      const decision = decide(job, waitsFor.map((name) => [name, results.get(name)!] as const), plan, hooks.canceled());
      if (!decision.run) {
        results.set(job.name, { status: decision.status, allowed: false, note: decision.note });
        hooks.skip(job, decision);
        continue;
      }
      const started = hooks.run(job).catch((error: Error): JobResult => ({ status: 'failed', allowed: false, note: error.message }));
      running.set(job.name, started.then((result) => {
        results.set(job.name, result);
        running.delete(job.name);
      }));
    }
    if (running.size === 0) {
      if (pending.length === before) throw new Error(`cannot order jobs ${pending.map((job) => job.name).join(', ')}`);
      continue;
    }
    await Promise.race(running.values());
  }
  return new Map(plan.jobs.map((job) => [job.name, results.get(job.name)!]));
}
