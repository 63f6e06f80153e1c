// gitlab-runner's side of the custom executor contract (executors/custom in
// its source): the environment it sets, the job it passes, the exit codes it
// reads and the JSON config_exec must print.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { buildsDir, cacheDir, type Settings } from './settings.mts';

export const driverName = 'nspawn-runner';
export const driverVersion = '0.1.0';

/** Stage names gitlab-runner passes to run_exec; unknown (future) names still run. */
export const knownStages = [
  'prepare_script', 'get_sources', 'clear_worktree', 'restore_cache', 'download_artifacts',
  'build_script', 'after_script', 'archive_cache', 'archive_cache_on_failure',
  'upload_artifacts_on_success', 'upload_artifacts_on_failure', 'cleanup_file_variables',
] as const;

/**
 * The stage gitlab-runner runs last in every job, whatever happened before
 * (common/build.go, removeFileBasedVariables): the last whose output reaches
 * the job log, since cleanup_exec's goes only to the runner's log.
 */
export const lastStage = 'cleanup_file_variables';

function exitCodeFrom(value: string | undefined, fallback: number): number {
  const code = Number(value);
  return Number.isInteger(code) && code > 0 && code < 256 ? code : fallback;
}

/** The job failed (script_failure): $BUILD_FAILURE_EXIT_CODE, 1 when run by hand. */
export function buildFailureExitCode(env: NodeJS.ProcessEnv = process.env): number {
  return exitCodeFrom(env.BUILD_FAILURE_EXIT_CODE, 1);
}

/** The runner or host failed (runner_system_failure): $SYSTEM_FAILURE_EXIT_CODE, 2 when run by hand. */
export function systemFailureExitCode(env: NodeJS.ProcessEnv = process.env): number {
  return exitCodeFrom(env.SYSTEM_FAILURE_EXIT_CODE, 2);
}

/** gitlab-runner >= 17.9 reads the script's real exit code from this file. */
export function reportBuildExitCode(code: number, env: NodeJS.ProcessEnv = process.env): void {
  if (env.BUILD_EXIT_CODE_FILE) writeFileSync(env.BUILD_EXIT_CODE_FILE, `${code}\n`);
}

export function jobIdFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.CUSTOM_ENV_CI_JOB_ID || undefined;
}

/** The job's image: object, as GitLab sends it (common/network.go, Image). */
export interface JobImage {
  name: string;
  /** image:pull_policy, unchecked: the runner's allowed_pull_policies decide. */
  pullPolicies: string[];
  /** image:docker:platform, such as linux/386. */
  platform: string | undefined;
  /** image:docker:user. */
  user: string | undefined;
  entrypoint: string[];
}

export interface JobResponse {
  image?: { name?: unknown; pull_policy?: unknown; entrypoint?: unknown; executor_opts?: { docker?: { platform?: unknown; user?: unknown } } };
  variables?: unknown;
  services?: unknown;
}

/** The job as GitLab sent it, or undefined when there is no readable JOB_RESPONSE_FILE. */
export function readJobResponse(env: NodeJS.ProcessEnv = process.env): JobResponse | undefined {
  const file = env.JOB_RESPONSE_FILE;
  if (!file || !existsSync(file)) return undefined;
  try {
    const job = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof job === 'object' && job !== null && !Array.isArray(job) ? job as JobResponse : undefined;
  } catch {
    // an unreadable job file is no reason to fail: fall back to the variables
    return undefined;
  }
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);
const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

/**
 * The image the job asked for. JOB_RESPONSE_FILE holds the job as GitLab
 * sent it, which a CI user cannot override the way CUSTOM_ENV_* variables
 * can, so it wins when present.
 */
export function jobImageSpecFromEnv(env: NodeJS.ProcessEnv = process.env): JobImage | undefined {
  const image = readJobResponse(env)?.image;
  const name = text(image?.name);
  if (name) {
    return {
      name,
      pullPolicies: strings(image?.pull_policy),
      platform: text(image?.executor_opts?.docker?.platform),
      user: text(image?.executor_opts?.docker?.user),
      entrypoint: strings(image?.entrypoint),
    };
  }
  const variable = text(env.CUSTOM_ENV_CI_JOB_IMAGE);
  return variable ? { name: variable, pullPolicies: [], platform: undefined, user: undefined, entrypoint: [] } : undefined;
}

export function jobImageFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return jobImageSpecFromEnv(env)?.name;
}

/**
 * A job variable: from the job as GitLab sent it, else from gitlab-runner's
 * CUSTOM_ENV_<NAME>. Used for DOCKER_AUTH_CONFIG, never logged.
 */
export function jobVariableFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const variables = readJobResponse(env)?.variables;
  if (Array.isArray(variables)) {
    const found = variables.find((variable): variable is { key: string; value: string } =>
      typeof variable === 'object' && variable !== null && variable.key === name && typeof variable.value === 'string');
    if (found) return found.value;
  }
  return text(env[`CUSTOM_ENV_${name}`]);
}

export interface ExecutorConfig {
  builds_dir: string;
  cache_dir: string;
  builds_dir_is_shared: boolean;
  hostname: string;
  driver: { name: string; version: string };
  shell: string;
}

export function buildExecutorConfig(settings: Settings): ExecutorConfig {
  return {
    builds_dir: buildsDir(settings),
    cache_dir: cacheDir(settings),
    // Each job has its own machine, so nothing else writes its builds
    // directory, unless the host's is shared into every machine: then
    // gitlab-runner has to keep concurrent jobs apart (a directory per
    // concurrent job, like the shell executor's).
    builds_dir_is_shared: settings.keepBuilds,
    hostname: hostname(),
    driver: { name: driverName, version: driverVersion },
    shell: 'bash',
  };
}
