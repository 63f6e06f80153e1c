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
import { resolveNeeds } from './needs.mts';
import { expandParallel, slug } from './parallel.mts';
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

function formatWarnings(warnings: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  return [...warnings].map(([what, jobs]) => (jobs.size ? `${what} (${jobs.size === 1 ? 'job' : 'jobs'} ${[...jobs].join(', ')})` : what));
}
