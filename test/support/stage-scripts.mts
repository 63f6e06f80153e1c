// The bash scripts the simulated runner hands to run_exec, one per stage,
// shaped like gitlab-runner's own (shells/abstract.go): variables exported,
// `set -eo pipefail`, each job line echoed before it runs, and the cache and
// artifacts work done by the `gitlab-runner` helper commands in the machine.
import type { JobPayload } from './job-payload.mts';
import type { RunnerSection } from './runner-config.mts';

/** The keys of config_exec's JSON that gitlab-runner reads. */
export interface ExecutorConfig {
  builds_dir: string;
  cache_dir: string;
  builds_dir_is_shared?: boolean;
  driver?: { name?: string; version?: string };
  job_env?: Record<string, string>;
}

export type StageWhen = 'on_success' | 'on_failure' | 'always';

const quote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

export function buildStageScripts(job: JobPayload, runner: RunnerSection, config: ExecutorConfig): Array<[string, string, StageWhen]> {
  const projectPath = job.job_info.project_full_path ?? 'project';
  const projectDir = config.builds_dir_is_shared
    ? `${config.builds_dir}/${runner.token.slice(0, 8)}/0/${projectPath}`
    : `${config.builds_dir}/${projectPath}`;
  const variables: Record<string, string> = {
    ...Object.fromEntries(job.variables.map(({ key, value }) => [key, value])),
    CI_BUILDS_DIR: config.builds_dir, CI_PROJECT_DIR: projectDir,
  };
  const preamble = [
    '#!/usr/bin/env bash', 'set -eo pipefail', 'set +o noclobber',
    ...Object.entries(variables).map(([key, value]) => `export ${key}=${quote(value)}`),
  ].join('\n');
  const script = (...lines: string[]) => `${preamble}\n${lines.join('\n')}\n`;
  const echoed = (lines: string[]) => lines.flatMap((line) => [`echo ${quote(`$ ${line}`)}`, line]);
  const inProject = 'cd "$CI_PROJECT_DIR"';

  const stages: Array<[string, string, StageWhen]> = [
    ['prepare_script', script('echo "Running on $(hostname)..."'), 'on_success'],
  ];
  if (variables.GIT_STRATEGY === 'none') {
    stages.push(['get_sources', script('echo "Skipping Git repository setup"', 'mkdir -p "$CI_PROJECT_DIR"'), 'on_success']);
  } else {
    const git = job.git_info;
    stages.push(['get_sources', script(
      `echo ${quote(`Fetching changes with git depth set to ${git.depth}...`)}`,
      'mkdir -p "$CI_PROJECT_DIR"', inProject,
      `if [ -d .git ]; then echo "Reinitialized existing Git repository"; else git init -q . && git remote add origin ${quote(git.repo_url)}; fi`,
      `git fetch -q --depth ${git.depth} origin ${git.refspecs.map(quote).join(' ')}`,
      `echo ${quote(`Checking out ${git.sha.slice(0, 8)} as detached HEAD (ref is ${git.ref})...`)}`,
      `git -c advice.detachedHead=false checkout -q -f ${quote(git.sha)}`,
    ), 'on_success']);
  }
  const cacheFile = (key: string) => `${config.cache_dir}/${projectPath}/${key}/cache.zip`;
  for (const cache of job.cache ?? []) {
    if (cache.policy === 'push') continue;
    stages.push(['restore_cache', script(inProject, `echo ${quote(`Checking cache for ${cache.key}...`)}`,
      `gitlab-runner cache-extractor --file ${quote(cacheFile(cache.key))} || echo "WARNING: Failed to extract cache"`), 'on_success']);
  }
  const build = job.steps.find((step) => step.name === 'script');
  stages.push(['build_script', script(inProject, ...echoed(build?.script ?? [])), 'on_success']);
  const after = job.steps.find((step) => step.name === 'after_script');
  if (after) stages.push(['after_script', script(inProject, 'echo "Running after_script"', ...echoed(after.script)), 'always']);
  for (const cache of job.cache ?? []) {
    if (cache.policy === 'pull') continue;
    const archive = script(inProject, `echo ${quote(`Creating cache ${cache.key}...`)}`,
      `gitlab-runner cache-archiver --file ${quote(cacheFile(cache.key))} ${cache.paths.map((path) => `--path ${quote(path)}`).join(' ')}`);
    if (cache.when !== 'on_failure') stages.push(['archive_cache', archive, 'on_success']);
    if (cache.when !== 'on_success') stages.push(['archive_cache_on_failure', archive, 'on_failure']);
  }
  for (const artifact of job.artifacts ?? []) {
    const upload = script(inProject, 'echo "Uploading artifacts..."', [
      'gitlab-runner artifacts-uploader', `--url ${quote(runner.url)}`, `--token ${quote(job.token)}`, `--id ${job.id}`,
      ...artifact.paths.map((path) => `--path ${quote(path)}`), `--name ${quote(artifact.name)}`,
      `--artifact-format ${artifact.artifact_format}`, `--artifact-type ${artifact.artifact_type}`,
    ].join(' '));
    if (artifact.when !== 'on_failure') stages.push(['upload_artifacts_on_success', upload, 'on_success']);
    if (artifact.when !== 'on_success') stages.push(['upload_artifacts_on_failure', upload, 'on_failure']);
  }
  stages.push(['cleanup_file_variables', script('true'), 'always']);
  return stages;
}
