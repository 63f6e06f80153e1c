// needs: and dependencies: resolved to the pipeline's jobs and checked as
// GitLab checks them: a need names a job (every instance of a parallel one,
// or the matrix instances asked for), in this stage or an earlier one, and
// present unless optional; dependencies are in earlier stages (or needs);
// and no cycle, which is named.
import { expandParallel } from './parallel.mts';
import type { CiJob, JobDefinition, NeedSpec } from './model.mts';
import { CiConfigError } from './yaml-source.mts';

export function resolveNeeds(jobs: CiJob[], defined: ReadonlyMap<string, JobDefinition>, pending: ReadonlyMap<CiJob, readonly NeedSpec[]>): void {
  const byName = new Map(jobs.map((job) => [job.name, job]));
  const allNames = [...new Set([...defined.values()].map((definition) => definition.name))];
  /** Pipeline jobs a name stands for: a job, or every instance of a parallel one. */
  const targets = (need: NeedSpec | { job: string; at?: NeedSpec['at']; matrix?: undefined }, owner: CiJob, what: string): CiJob[] | undefined => {
    const instances = [...defined].filter(([instance, definition]) =>
      instance === need.job || (definition.name === need.job && (!need.matrix || need.matrix.some((values) =>
        Object.entries(values).every(([key, value]) => instanceMatrix(instance, definition)?.[key] === value)))));
    if (instances.length === 0) {
      throw new CiConfigError(`job ${owner.name} ${what} ${need.job}, which is not defined`, need.at ?? owner.definition.at, `jobs: ${allNames.join(', ')}`);
    }
    const present = instances.map(([instance]) => byName.get(instance)).filter((job): job is CiJob => job !== undefined);
    if (present.length === 0) return undefined;
    return present;
  };
  for (const job of jobs) {
    const needs = pending.get(job);
    if (needs) {
      const resolved: Array<{ job: string; artifacts: boolean; optional: boolean }> = [];
      for (const need of needs) {
        const found = targets(need, job, 'needs');
        if (!found) {
          if (need.optional) continue;
          throw new CiConfigError(`job ${job.name} needs ${need.job}, which rules or only/except leave out of this pipeline`, need.at ?? job.definition.at,
            'make the need optional: true, or change the rules');
        }
        for (const target of found) {
          if (target.stageIndex > job.stageIndex) {
            throw new CiConfigError(`job ${job.name} needs ${target.name}, which is in the later stage ${target.stage}`, need.at ?? job.definition.at);
          }
          if (!resolved.some((entry) => entry.job === target.name)) resolved.push({ job: target.name, artifacts: need.artifacts, optional: need.optional });
        }
      }
      job.needs = resolved;
    }
  }
  checkNeedsCycles(jobs, byName);
  for (const job of jobs) {
    const declared = job.definition.dependencies;
    if (declared) {
      const names: string[] = [];
      for (const dependency of declared) {
        const found = targets({ job: dependency, at: job.definition.at }, job, 'depends on');
        for (const target of found ?? []) {
          if (target.stageIndex >= job.stageIndex && !job.needs?.some((need) => need.job === target.name)) {
            throw new CiConfigError(`job ${job.name} depends on ${target.name}, which is not in an earlier stage`, job.definition.at);
          }
          if (job.needs && !job.needs.some((need) => need.job === target.name)) {
            throw new CiConfigError(`job ${job.name} depends on ${target.name}, which is not in its needs:`, job.definition.at);
          }
          names.push(target.name);
        }
      }
      job.dependencies = names;
    } else if (job.needs) {
      job.dependencies = job.needs.filter((need) => need.artifacts).map((need) => need.job);
    } else {
      job.dependencies = jobs.filter((other) => other.stageIndex < job.stageIndex).map((other) => other.name);
    }
  }
}

function instanceMatrix(instance: string, definition: JobDefinition): Record<string, string> | undefined {
  return expandParallel(definition).find((candidate) => candidate.name === instance)?.matrix;
}

function checkNeedsCycles(jobs: readonly CiJob[], byName: ReadonlyMap<string, CiJob>): void {
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (job: CiJob, path: string[]): void => {
    if (state.get(job.name) === 'done') return;
    if (state.get(job.name) === 'visiting') {
      const cycle = [...path.slice(path.indexOf(job.name)), job.name];
      throw new CiConfigError(`needs cycle: ${cycle.join(' -> ')}`, job.definition.at);
    }
    state.set(job.name, 'visiting');
    for (const need of job.needs ?? []) visit(byName.get(need.job)!, [...path, job.name]);
    state.set(job.name, 'done');
  };
  for (const job of jobs) visit(job, []);
}
