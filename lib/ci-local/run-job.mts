// One local job, through the same prepare/run/cleanup as a CI job: its
// project directory is made on the host (the sources, the artifacts of its
// dependencies, its cache) and bound into a fresh machine at
// $CI_PROJECT_DIR, with its services: beside it as prepare starts a CI
// job's; before_script and script run as build_script, then after_script in
// a shell of its own (after a failure or a timeout too, as gitlab-runner
// does); the machines are removed; only then, with nothing of the job
// running, are its cache and artifacts copied out.
import { existsSync, lchownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { CiJob } from '../ci/model.mts';
import { expandText, expandVariables, mergeVariables, variablesFrom, type Variables } from '../ci/variables.mts';
import { ScriptFailed } from '../errors.mts';
import { check } from '../exec.mts';
import { cleanupJob, runStage } from '../job/machine.mts';
import { prepareJob } from '../job/prepare.mts';
import type { Settings } from '../settings.mts';
import {
  artifactsDir, cacheDirName, dotenvFile, ensureLocalDir, filesKey, localDir, readDotenvReport, restoreTree, selectPaths, storeTree,
} from './artifacts.mts';
import type { JobOutput } from './output.mts';
import type { RepoInfo, Sources } from './repo.mts';
import { buildStageScript } from './script.mts';
import { localJobServices } from './services.mts';

export interface RunContext {
  settings: Readonly<Settings>;
  repo: RepoInfo;
  sources: Sources;
  /** This run's directory under the state directory. */
  workDir: string;
  pipelineId: number;
  /** Pipeline-wide predefined variables. */
  predefined: Readonly<Record<string, string>>;
  /** variables.yml, then --variable: above the YAML's. */
  overrides: Variables;
  defaultImage: string;
  color: boolean;
  /** Aborted on Ctrl-C: running stages stop, nothing new starts. */
  cancel: AbortSignal;
}

export type JobStatus = 'success' | 'failed' | 'skipped' | 'manual' | 'canceled';

export interface JobResult {
  status: JobStatus;
  /** A failure allow_failure permits. */
  allowed: boolean;
  exitCode?: number;
  durationMs?: number;
  note?: string;
}

/** gitlab-runner's default timeout of after_script. */
const afterScriptTimeoutMs = 5 * 60_000;

export async function runLocalJob(job: CiJob, number: number, context: RunContext, out: JobOutput): Promise<JobResult> {
  const started = Date.now();
  const jobId = `exec-${process.pid}-${number}`;
  const dir = `${context.workDir}/job-${number}`;
  const projectHost = `${dir}/project`;
  const checkout = context.repo.dir;
  const predefinedJob = {
    ...job.predefined,
    CI_JOB_ID: String(context.pipelineId * 1000 + number),
    CI_JOB_STARTED_AT: new Date(started).toISOString(),
    CI_JOB_STATUS: 'running',
  };
  let variables = mergeVariables(variablesFrom({ ...context.predefined }), variablesFrom(predefinedJob), job.variables);
  const dotenv = readDependencyDotenv(checkout, job.dependencies);
  variables = mergeVariables(variables, variablesFrom(dotenv), context.overrides);
  const expanded = expandVariables(variables);
  const lookup = (name: string) => expanded.get(name);
  // Where the machine sees the project: the predefined value, whatever a variable says.
  const projectDir = context.predefined.CI_PROJECT_DIR!;
  const result: JobResult = { status: 'failed', allowed: false };
  mkdirSync(dir, { recursive: true });
  const image = expandText(job.definition.image?.name ?? '', lookup) || context.defaultImage;
  out.note(`Running on image ${image} (machine run-${jobId})`);
  try {
    await makeProjectDir(context, projectHost, lookup('GIT_STRATEGY'));
    for (const dependency of job.dependencies) restoreTree(artifactsDir(checkout, dependency), projectHost);
    const cacheKeys = restoreCaches(job, projectHost, checkout, lookup, out);
    // Artifacts of an earlier run must not outlive this one's outcome.
    rmSync(artifactsDir(checkout, job.name), { recursive: true, force: true });
    rmSync(dotenvFile(checkout, job.name), { force: true });

    try {
      const services = localJobServices(job.definition.services, expanded);
      for (const { image: name, hostNames } of services.services) {
        out.note(`Starting service ${name}${hostNames.length ? ` as ${hostNames.join(', ')}` : ''}`);
      }
      await prepareJob(context.settings, {
        jobId,
        imageReference: image,
        binds: [{ source: projectHost, target: projectDir, readOnly: false, idmap: context.settings.privateUsers }],
        ...(services.services.length ? { services } : {}),
      });
    } catch (error) {
      out.note(`preparing the machine failed: ${(error as Error).message}`);
      return finish(result, job, started, { note: 'machine not prepared' });
    }
    try {
      const build = await runScriptStage(context, jobId, dir, 'build_script', expanded, projectDir,
        [...job.definition.beforeScript, ...job.definition.script], job.definition.timeoutSeconds, out);
      Object.assign(result, build);
      if (job.definition.afterScript.length > 0 && !context.cancel.aborted) {
        const status = result.status === 'success' ? 'success' : result.status === 'canceled' ? 'canceled' : 'failed';
        out.note('Running after_script');
        const after = await runScriptStage(context, jobId, dir, 'after_script', new Map([...expanded, ['CI_JOB_STATUS', status]]), projectDir,
          job.definition.afterScript, afterScriptTimeoutMs / 1000, out);
        if (after.status !== 'success') out.note(`after_script failed${after.exitCode === undefined ? '' : ` with exit code ${after.exitCode}`}: ignored, as in CI`);
      }
    } finally {
      await cleanupJob(context.settings, jobId).catch((error: Error) => out.note(`cleanup: ${error.message}`));
    }
    if (result.status !== 'canceled') {
      saveCaches(job, cacheKeys, projectHost, context, result.status === 'success', lookup, out);
      saveArtifacts(job, projectHost, context, result.status === 'success', lookup, out);
    }
    return finish(result, job, started, {});
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function finish(result: JobResult, job: CiJob, started: number, extra: Partial<JobResult>): JobResult {
  Object.assign(result, extra);
  result.durationMs = Date.now() - started;
  if (result.status === 'failed') {
    const { allowed, exitCodes } = job.allowFailure;
    result.allowed = allowed && (!exitCodes || (result.exitCode !== undefined && exitCodes.includes(result.exitCode)));
  }
  return result;
}

async function makeProjectDir(context: RunContext, projectHost: string, strategy: string | undefined): Promise<void> {
  if (strategy === 'none' || strategy === 'empty') {
    mkdirSync(projectHost, { recursive: true });
    return;
  }
  // A reflink copy where the filesystem has them, a plain copy elsewhere.
  await check(['cp', '-a', '--reflink=auto', '--', context.sources.dir, projectHost]);
}

async function runScriptStage(
  context: RunContext, jobId: string, dir: string, stage: string, variables: ReadonlyMap<string, string>,
  projectDir: string, commands: readonly string[], timeoutSeconds: number | undefined, out: JobOutput,
): Promise<JobResult> {
  const scriptPath = `${dir}/${stage}`;
  writeFileSync(scriptPath, buildStageScript({ variables, projectDir, commands, color: context.color }), { mode: 0o700 });
  const stop = new AbortController();
  const onCancel = () => stop.abort();
  context.cancel.addEventListener('abort', onCancel);
  let timedOut = false;
  const timer = timeoutSeconds ? setTimeout(() => {
    timedOut = true;
    out.note(`${stage} timed out after ${timeoutSeconds} s: stopping it`);
    stop.abort();
  }, timeoutSeconds * 1000) : undefined;
  try {
    await runStage(context.settings, { jobId, scriptPath, stage, shell: 'bash', output: (chunk) => out.data(chunk), cancel: stop.signal });
    return { status: 'success', allowed: false };
  } catch (error) {
    const exitCode = error instanceof ScriptFailed ? error.exitCode : undefined;
    if (context.cancel.aborted) return { status: 'canceled', allowed: false, exitCode };
    if (!(error instanceof ScriptFailed)) out.note(`${stage}: ${(error as Error).message}`);
    else if (!timedOut) out.note(`${stage} failed with exit code ${exitCode}`);
    return { status: 'failed', allowed: false, exitCode, note: timedOut ? 'timed out' : undefined };
  } finally {
    out.flush();
    clearTimeout(timer);
    context.cancel.removeEventListener('abort', onCancel);
  }
}

function readDependencyDotenv(checkout: string, dependencies: readonly string[]): Record<string, string> {
  const variables: Record<string, string> = {};
  for (const dependency of dependencies) {
    const file = dotenvFile(checkout, dependency);
    if (existsSync(file)) Object.assign(variables, JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>);
  }
  return variables;
}

function cacheRoot(checkout: string): string {
  return `${localDir(checkout)}/cache`;
}

/** Restores each cache (its key, else its fallback keys); returns the keys, for saving. */
function restoreCaches(job: CiJob, projectHost: string, checkout: string, lookup: (name: string) => string | undefined, out: JobOutput): string[] {
  return job.definition.cache.map((cache) => {
    const key = typeof cache.key === 'string'
      ? expandText(cache.key, lookup)
      : filesKey(projectHost, cache.key.files.map((file) => expandText(file, lookup)), cache.key.prefix && expandText(cache.key.prefix, lookup));
    if (cache.policy === 'push') return key;
    const fallback = lookup('CACHE_FALLBACK_KEY');
    const candidates = [key, ...cache.fallbackKeys.map((name) => expandText(name, lookup)), ...(fallback ? [fallback] : [])];
    const found = candidates.find((candidate) => existsSync(`${cacheRoot(checkout)}/${cacheDirName(candidate)}`));
    if (found === undefined) out.note(`no cache for key ${key} yet`);
    else {
      const count = restoreTree(`${cacheRoot(checkout)}/${cacheDirName(found)}`, projectHost);
      out.note(`restored cache ${found} (${count} paths)`);
    }
    return key;
  });
}

function wanted(when: 'on_success' | 'on_failure' | 'always', succeeded: boolean): boolean {
  return when === 'always' || (when === 'on_success') === succeeded;
}

function saveCaches(job: CiJob, keys: readonly string[], projectHost: string, context: RunContext, succeeded: boolean,
  lookup: (name: string) => string | undefined, out: JobOutput): void {
  job.definition.cache.forEach((cache, index) => {
    if (cache.policy === 'pull' || !wanted(cache.when, succeeded)) return;
    const selection = selectPaths(projectHost, { paths: cache.paths.map((path) => expandText(path, lookup)), untracked: cache.untracked, tracked: context.sources.tracked });
    for (const warning of selection.warnings) out.note(`cache: ${warning}`);
    const root = ensureLocalDir(context.repo.dir, 'cache', context.repo.owner);
    const count = storeTree(projectHost, selection.paths, `${root}/${cacheDirName(keys[index]!)}`, context.repo.owner);
    out.note(`saved cache ${keys[index]} (${count} paths)`);
  });
}

function saveArtifacts(job: CiJob, projectHost: string, context: RunContext, succeeded: boolean,
  lookup: (name: string) => string | undefined, out: JobOutput): void {
  const artifacts = job.definition.artifacts;
  if (!artifacts || !wanted(artifacts.when, succeeded)) return;
  const expand = (paths: readonly string[]) => paths.map((path) => expandText(path, lookup));
  const selection = selectPaths(projectHost, {
    paths: expand(artifacts.paths),
    exclude: expand(artifacts.exclude),
    untracked: artifacts.untracked,
    tracked: context.sources.tracked,
  });
  for (const warning of selection.warnings) out.note(`artifacts: ${warning}`);
  const owner = context.repo.owner;
  ensureLocalDir(context.repo.dir, 'artifacts', owner);
  const count = storeTree(projectHost, selection.paths, artifactsDir(context.repo.dir, job.name), owner);
  out.note(`artifacts: ${count} paths in ${artifactsDir(context.repo.dir, job.name).slice(context.repo.dir.length + 1)}`);
  if (artifacts.dotenv.length) {
    const variables: Record<string, string> = {};
    for (const file of expand(artifacts.dotenv)) {
      const read = readDotenvReport(projectHost, file);
      if (typeof read === 'string') out.note(`artifacts:reports:dotenv: ${read}`);
      else Object.assign(variables, read);
    }
    ensureLocalDir(context.repo.dir, 'dotenv', owner);
    const file = dotenvFile(context.repo.dir, job.name);
    writeFileSync(file, `${JSON.stringify(variables, null, 2)}\n`);
    lchownSync(file, owner.uid, owner.gid);
  }
}
