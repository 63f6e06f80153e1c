// `nspawn-runner exec`: a project's .gitlab-ci.yml, read and checked as
// GitLab would, then listed or run here, each job in a fresh machine of the
// runner's own images, storage and settings. All bad input is reported
// before any machine starts.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { pathGlobToRegExp } from '../ci/glob.mts';
import { formatListRows, listHeader, listJobs } from '../ci/list.mts';
import type { CiJob, Pipeline } from '../ci/model.mts';
import { loadPipeline } from '../ci/pipeline.mts';
import { isVariableName, mergeVariables, parseVariables, variablesFrom, type Variables } from '../ci/variables.mts';
import { CiConfigError, readCiYaml } from '../ci/yaml-source.mts';
import { JobError, SystemError, UsageError } from '../errors.mts';
import { log, writeAll } from '../log.mts';
import { ensureRunnerDirs } from '../job/machine.mts';
import { buildsDir, type Settings } from '../settings.mts';
import { localDir, localDirName } from './artifacts.mts';
import { formatSummary, formatTable, PrefixedOutput, type SummaryRow } from './output.mts';
import { pipelineVariables } from './predefined.mts';
import { changedFiles, makeSources, readRepo, type RepoInfo } from './repo.mts';
import { runLocalJob, type JobResult, type RunContext } from './run-job.mts';
import { planJobs, runPlan, type Selection } from './schedule.mts';

export interface ExecOptions {
  cwd: string;
  /** The configuration file, relative to the checkout's top. */
  file: string;
  selection: Selection;
  list: boolean;
  json: boolean;
  concurrency: number;
  dirty: boolean;
  /** --variable K=V, in order. */
  variables: readonly string[];
  defaultImage: string | undefined;
}

export function parseVariableOptions(values: readonly string[]): Map<string, string> {
  const variables = new Map<string, string>();
  for (const value of values) {
    const index = value.indexOf('=');
    const name = index === -1 ? value : value.slice(0, index);
    if (index === -1 || !isVariableName(name)) throw new UsageError(`--variable ${value}: use NAME=VALUE, NAME of letters, digits and _`);
    variables.set(name, value.slice(index + 1));
  }
  return variables;
}

/** .nspawn-runner/variables.yml: NAME: value (or NAME: {value: ..., expand: false}). */
function readLocalVariables(checkout: string): Variables {
  const file = `${localDir(checkout)}/variables.yml`;
  if (!existsSync(file)) return new Map();
  const map = readCiYaml(file, `${localDirName}/variables.yml`);
  return parseVariables(map, undefined, `${localDirName}/variables.yml`);
}

export interface LoadedProject {
  repo: RepoInfo;
  pipeline: Pipeline;
  predefined: Record<string, string>;
  overrides: Variables;
  pipelineId: number;
}

export async function loadProject(settings: Readonly<Settings>, options: ExecOptions): Promise<LoadedProject> {
  const repo = await readRepo(options.cwd);
  const cli = parseVariableOptions(options.variables);
  const overrides = mergeVariables(readLocalVariables(repo.dir), variablesFrom(Object.fromEntries(cli)));
  const pipelineId = Math.floor(Date.now() / 1000);
  const predefined = pipelineVariables(repo, {
    pipelineId, createdAt: new Date().toISOString(), buildsDir: buildsDir(settings), configFile: options.file,
  });
  const changes = new Map<string, readonly string[] | undefined>();
  const pipeline = loadPipeline({
    projectDir: repo.dir,
    file: options.file,
    predefined,
    overrides,
    changed: (paths, compareTo) => {
      const key = compareTo ?? '';
      if (!changes.has(key)) changes.set(key, changedFiles(repo, compareTo, options.dirty));
      const files = changes.get(key);
      // Nothing to compare with: GitLab takes changes: as true then.
      if (files === undefined) return true;
      const patterns = paths.map((path) => pathGlobToRegExp(path));
      return files.some((file) => patterns.some((pattern) => pattern.test(file)));
    },
  });
  return { repo, pipeline, predefined, overrides, pipelineId };
}

export async function execPipeline(settings: Readonly<Settings>, options: ExecOptions): Promise<number> {
  if (!Number.isInteger(options.concurrency) || options.concurrency < 1) throw new UsageError('--concurrency must be a whole number from 1');
  const project = await loadProject(settings, options);
  const { pipeline } = project;
  if (pipeline.warnings.length) log.warn(`not supported by exec, ignored: ${pipeline.warnings.join('; ')}`);
  if (options.list) {
    if (pipeline.workflowBlocked) log.warn(`workflow: ${pipeline.workflowBlocked}: GitLab would create no pipeline`);
    const jobs = listJobs(pipeline);
    writeAll(1, options.json ? `${JSON.stringify(jobs, null, 2)}\n` : formatTable(listHeader, formatListRows(jobs)));
    return 0;
  }
  if (pipeline.workflowBlocked) {
    throw new CiConfigError(`workflow: ${pipeline.workflowBlocked}: GitLab would create no pipeline`, undefined, 'set the variables its rules need with --variable');
  }
  const plan = planJobs(pipeline, options.selection);
  if (plan.jobs.length === 0) throw new JobError('no jobs to run', 'exec --list shows the pipeline');
  if (process.getuid?.() !== 0) throw new SystemError('exec must run as root to start machines', 'run it with sudo; exec --list works without');
  return runJobs(settings, options, project, plan);
}

async function runJobs(settings: Readonly<Settings>, options: ExecOptions, project: LoadedProject, plan: ReturnType<typeof planJobs>): Promise<number> {
  ensureRunnerDirs(settings);
  const workDir = `${settings.root}/.exec/${process.pid}-${Date.now()}`;
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  const interrupt = new AbortController();
  const onSignal = (): void => {
    if (!interrupt.signal.aborted) log.warn('interrupted: stopping the running jobs and removing their machines');
    interrupt.abort();
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const name of signals) process.on(name, onSignal);
  const color = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
  const output = new PrefixedOutput(plan.jobs.map((job) => job.name), color);
  try {
    const depth = Number(project.overrides.get('GIT_DEPTH')?.value ?? project.pipeline.variables.get('GIT_DEPTH')?.value ?? 20);
    const sources = await makeSources(project.repo, `${workDir}/sources`, { dirty: options.dirty, depth: Number.isInteger(depth) && depth >= 0 ? depth : 20 });
    const context: RunContext = {
      settings,
      repo: project.repo,
      sources,
      workDir,
      pipelineId: project.pipelineId,
      predefined: project.predefined,
      overrides: project.overrides,
      defaultImage: options.defaultImage ?? settings.defaultImage ?? 'bookworm',
      color,
      cancel: interrupt.signal,
    };
    let number = 0;
    const outputs = new Map<string, ReturnType<PrefixedOutput['forJob']>>();
    const outputOf = (job: CiJob) => {
      let out = outputs.get(job.name);
      if (!out) outputs.set(job.name, (out = output.forJob(job.name)));
      return out;
    };
    const results = await runPlan(plan, options.concurrency, {
      run: (job) => runLocalJob(job, ++number, context, outputOf(job)),
      skip: (job, decision) => outputOf(job).note(`${decision.status}: ${decision.note}`),
      canceled: () => interrupt.signal.aborted,
    });
    const rows: SummaryRow[] = plan.jobs.map((job) => ({
      job: job.name, stage: job.stage, result: resultText(results.get(job.name)!), durationMs: results.get(job.name)!.durationMs,
    }));
    writeAll(1, `\n${formatSummary(rows)}`);
    if (interrupt.signal.aborted) return 130;
    return [...results.values()].some((result) => result.status === 'failed' && !result.allowed) ? 1 : 0;
  } finally {
    // Still ours until the end: a second Ctrl-C must not cut the removal short.
    rmSync(workDir, { recursive: true, force: true });
    for (const name of signals) process.off(name, onSignal);
  }
}

export function resultText(result: JobResult): string {
  const code = result.exitCode === undefined ? '' : ` (exit ${result.exitCode})`;
  const note = result.note && result.status === 'failed' ? `, ${result.note}` : '';
  switch (result.status) {
    case 'success': return 'passed';
    case 'failed': return `${result.allowed ? 'failed, allowed' : 'failed'}${code}${note}`;
    default: return result.status;
  }
}
