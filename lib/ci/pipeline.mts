// The pipeline GitLab would create from a project's .gitlab-ci.yml: includes
// merged, !references resolved, extends and default applied, parallel jobs
// expanded to the names GitLab shows, rules and only/except evaluated, and
// needs and dependencies resolved and checked. Pure: the files, the
// predefined variables and the git questions come from the caller.
import { matchPaths } from './glob.mts';
import { loadWithIncludes } from './include.mts';
import { collectDefaults, resolveAllExtends } from './extends.mts';
import { parseJob } from './job.mts';
import type { CiJob, JobDefinition, NeedSpec, Pipeline } from './model.mts';
import { resolveReferences } from './reference.mts';
import { evaluateRules, evaluateWorkflow, onlyExceptInclude, type RuleInputs } from './rules.mts';
import { expandVariables, mergeVariables, parseVariables, variablesFrom, type Variables } from './variables.mts';
import { CiConfigError, isCiMap, keyPosition, positionOf, type CiMap } from './yaml-source.mts';

export interface PipelineInputs {
  projectDir: string;
  /** The configuration file, relative to projectDir. */
  file: string;
  /** Pipeline-wide predefined variables (CI_COMMIT_SHA, CI_PROJECT_PATH, ...). */
  predefined: Readonly<Record<string, string>>;
  /** Variables above the YAML's: the project's (variables.yml), then the command line's. */
  overrides: Variables;
  /** rules:changes; without it every changes: holds, as GitLab has it when there is nothing to compare. */
  changed?: (paths: readonly string[], compareTo?: string) => boolean;
}

/** Top-level keys that are not jobs. */
const keywords = new Set(['default', 'include', 'stages', 'types', 'variables', 'workflow', 'image', 'services', 'cache', 'before_script', 'after_script', 'spec']);

export const defaultStages = ['build', 'test', 'deploy'];

export function loadPipeline(inputs: PipelineInputs): Pipeline {
  const warnings = new Map<string, Set<string>>();
  const warn = (what: string, job = ''): void => {
    let jobs = warnings.get(what);
    if (!jobs) warnings.set(what, (jobs = new Set()));
    if (job) jobs.add(job);
  };
  const exists = (paths: readonly string[]): boolean =>
    paths.some((pattern) => matchPaths(inputs.projectDir, pattern, (dir) => dir === '.git').some((entry) => entry.kind !== 'dir'));
  const changed = inputs.changed ?? (() => true);
  const inputsFor = (variables: Variables): RuleInputs => {
    const expanded = expandVariables(variables);
    return { lookup: (name) => expanded.get(name), changed, exists };
  };
  const pipelineLevel = mergeVariables(variablesFrom({ ...inputs.predefined }), inputs.overrides);

  const includeWarnings = new Set<string>();
  const merged = loadWithIncludes({
    projectDir: inputs.projectDir,
    warnings: includeWarnings,
    rulesMatch: (rules, at) => {
      const workflow = evaluateWorkflow({ rules }, at, inputsFor(pipelineLevel));
      return workflow.run;
    },
  }, inputs.file);
  for (const what of includeWarnings) warn(what);
  const config = resolveReferences(merged);

  const stages = parseStages(config);
  const globalVariables = parseVariables(config.variables, keyPosition(config, 'variables'), 'variables');
  const workflow = evaluateWorkflow(config.workflow, keyPosition(config, 'workflow'),
    inputsFor(mergeVariables(variablesFrom({ ...inputs.predefined }), globalVariables, inputs.overrides)));
  const pipelineVariables = mergeVariables(globalVariables, workflow.variables);
  if (isCiMap(config.spec) && config.spec.inputs !== undefined) warn('spec:inputs');

  const rawJobs = new Map<string, CiMap>();
  for (const [name, value] of Object.entries(config)) {
    if (keywords.has(name)) continue;
    if (!isCiMap(value)) {
      // A hidden key may hold anything (anchors, lists for !reference).
      if (name.startsWith('.')) continue;
      throw new CiConfigError(`job ${name} must be a mapping`, keyPosition(config, name));
    }
    rawJobs.set(name, value);
  }
  const resolved = resolveAllExtends(rawJobs);
  const defaults = collectDefaults(config);
  const definitions: JobDefinition[] = [];
  for (const [name, job] of resolved) {
    if (name.startsWith('.')) continue;
    definitions.push(parseJob(name, job, { defaults, globalVariables: pipelineVariables, stages, warn }, keyPosition(config, name)));
  }

  const jobs: CiJob[] = [];
  const pendingNeeds = new Map<CiJob, readonly NeedSpec[]>();
  const defined = new Map<string, JobDefinition>();
  for (const definition of definitions) {
    for (const instance of expandParallel(definition)) {
      defined.set(instance.name, definition);
      const stageIndex = stages.indexOf(definition.stage);
      const predefined: Record<string, string> = {
        CI_JOB_NAME: instance.name,
        CI_JOB_NAME_SLUG: slug(instance.name),
        CI_JOB_STAGE: definition.stage,
        ...instance.node,
      };
      if (definition.environment) predefined.CI_ENVIRONMENT_NAME = definition.environment;
      let variables: Variables = mergeVariables(definition.inheritedVariables, definition.variables, variablesFrom(instance.matrix));
      const ruleInputs = inputsFor(mergeVariables(variablesFrom({ ...inputs.predefined, ...predefined }), variables, inputs.overrides));
      let when = definition.when;
      let allowFailure = definition.allowFailure;
      let needs = definition.needs;
      if (definition.rules) {
        const outcome = evaluateRules(definition.rules, ruleInputs, definition.when);
        if (!outcome || outcome.when === 'never') continue;
        when = outcome.when;
        allowFailure = outcome.allowFailure ?? allowFailure;
        needs = outcome.needs ?? needs;
        variables = mergeVariables(variables, outcome.variables);
      } else if (!onlyExceptInclude(definition.only, definition.except, ruleInputs)) {
        continue;
      }
      const job: CiJob = { name: instance.name, definition, stage: definition.stage, stageIndex, when, allowFailure, variables, predefined, dependencies: [] };
      if (needs) pendingNeeds.set(job, needs);
      jobs.push(job);
    }
  }
  jobs.sort((a, b) => a.stageIndex - b.stageIndex);
  resolveNeeds(jobs, defined, pendingNeeds);

  const pipeline: Pipeline = { stages, jobs, variables: pipelineVariables, warnings: formatWarnings(warnings) };
  if (!workflow.run) pipeline.workflowBlocked = workflow.reason;
  return pipeline;
}

function parseStages(config: CiMap): string[] {
  const key = config.stages !== undefined ? 'stages' : 'types';
  const value = config[key];
  if (value === undefined || value === null) return ['.pre', ...defaultStages, '.post'];
  const list = Array.isArray(value) ? value.flat(10) : undefined;
  if (!list || !list.every((stage) => typeof stage === 'string' && stage !== '')) {
    throw new CiConfigError(`${key} must be a list of stage names`, positionOf(value) ?? keyPosition(config, key));
  }
  const named = (list as string[]).filter((stage) => stage !== '.pre' && stage !== '.post');
  return ['.pre', ...new Set(named), '.post'];
}

interface Instance {
  name: string;
  matrix: Record<string, string>;
  node: Record<string, string>;
}

/** parallel: N gives "job 1/N" ...; parallel: matrix gives "job: [a, b]" per combination. */
export function expandParallel(definition: JobDefinition): Instance[] {
  const parallel = definition.parallel;
  if (!parallel) return [{ name: definition.name, matrix: {}, node: {} }];
  if ('total' in parallel) {
    return Array.from({ length: parallel.total }, (_, index) => ({
      name: `${definition.name} ${index + 1}/${parallel.total}`,
      matrix: {},
      node: { CI_NODE_INDEX: String(index + 1), CI_NODE_TOTAL: String(parallel.total) },
    }));
  }
  const combinations: Array<Record<string, string>> = [];
  for (const entry of parallel.matrix) {
    let partial: Array<Record<string, string>> = [{}];
    for (const [name, values] of entry) {
      partial = partial.flatMap((combination) => values.map((value) => ({ ...combination, [name]: value })));
    }
    combinations.push(...partial);
  }
  return combinations.map((matrix, index) => ({
    name: `${definition.name}: [${Object.values(matrix).join(', ')}]`,
    matrix,
    node: { CI_NODE_INDEX: String(index + 1), CI_NODE_TOTAL: String(combinations.length) },
  }));
}

/** CI_JOB_NAME_SLUG's rule: lower case, [a-z0-9] kept, others "-", at most 63, no "-" at the ends. */
export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]/g, '-').slice(0, 63).replace(/^-+|-+$/g, '');
}

function resolveNeeds(jobs: CiJob[], defined: ReadonlyMap<string, JobDefinition>, pending: ReadonlyMap<CiJob, readonly NeedSpec[]>): void {
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

function formatWarnings(warnings: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  return [...warnings].map(([what, jobs]) => (jobs.size ? `${what} (${jobs.size === 1 ? 'job' : 'jobs'} ${[...jobs].join(', ')})` : what));
}
