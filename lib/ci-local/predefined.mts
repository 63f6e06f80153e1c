// The predefined variables a local pipeline gives its jobs: those jobs
// commonly read, with the values GitLab would give a push of the current
// branch. GITLAB_CI is "false", as gitlab-ci-local has it, so rules can tell
// a local run from CI; every one of them can be overridden with --variable.
import { slug } from '../ci/parallel.mts';
import type { RepoInfo } from './repo.mts';

export interface PipelineIds {
  /** A number per run, as GitLab's pipeline ids are. */
  pipelineId: number;
  createdAt: string;
  buildsDir: string;
  configFile: string;
}

export function projectDirOf(buildsDir: string, repo: RepoInfo): string {
  return `${buildsDir}/${repo.projectPath}`;
}

export function pipelineVariables(repo: RepoInfo, ids: PipelineIds): Record<string, string> {
  const [title = '', ...rest] = repo.message.replace(/\n+$/, '').split('\n');
  const ref = repo.branch ?? repo.sha;
  const namespace = repo.projectPath.split('/').slice(0, -1).join('/');
  const name = repo.projectPath.split('/').at(-1)!;
  const variables: Record<string, string> = {
    CI: 'true',
    GITLAB_CI: 'false',
    CI_SERVER: 'yes',
    CI_CONFIG_PATH: ids.configFile,
    CI_BUILDS_DIR: ids.buildsDir,
    CI_PROJECT_DIR: projectDirOf(ids.buildsDir, repo),
    CI_PROJECT_NAME: name,
    CI_PROJECT_TITLE: name,
    CI_PROJECT_NAMESPACE: namespace,
    CI_PROJECT_ROOT_NAMESPACE: namespace.split('/')[0]!,
    CI_PROJECT_PATH: repo.projectPath,
    CI_PROJECT_PATH_SLUG: slug(repo.projectPath),
    CI_COMMIT_SHA: repo.sha,
    CI_COMMIT_SHORT_SHA: repo.sha.slice(0, 8),
    CI_COMMIT_BEFORE_SHA: '0'.repeat(40),
    CI_COMMIT_REF_NAME: ref,
    CI_COMMIT_REF_SLUG: slug(ref),
    CI_COMMIT_MESSAGE: repo.message,
    CI_COMMIT_TITLE: title,
    CI_COMMIT_DESCRIPTION: rest.join('\n').replace(/^\n+/, ''),
    CI_COMMIT_AUTHOR: repo.author,
    CI_COMMIT_TIMESTAMP: repo.timestamp,
    CI_DEFAULT_BRANCH: repo.defaultBranch,
    CI_PIPELINE_SOURCE: 'push',
    CI_PIPELINE_ID: String(ids.pipelineId),
    CI_PIPELINE_IID: String(ids.pipelineId),
    CI_PIPELINE_CREATED_AT: ids.createdAt,
  };
  if (repo.branch) variables.CI_COMMIT_BRANCH = repo.branch;
  if (repo.remoteUrl) variables.CI_REPOSITORY_URL = repo.remoteUrl;
  return variables;
}
