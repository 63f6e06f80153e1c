// The job JSON GitLab sends a runner (gitlab-runner's common/spec Job, as
// network/gitlab_test.go shows it), built from the little a test asks for.

const projectPath = 'nspawn-runner/e2e';
const predefinedFailureReasons = ['script_failure', 'runner_system_failure', 'job_execution_timeout', 'unknown_failure'];

export interface JobVariable {
  key: string;
  value: string;
  public?: boolean;
  masked?: boolean;
  file?: boolean;
}

/** What a test asks for; jobPayload() turns it into the JSON GitLab would send. */
export interface JobSpec {
  script: string[];
  afterScript?: string[];
  image?: string;
  variables?: Record<string, string>;
  /** runner_info.timeout: the job's timeout in seconds. */
  timeoutSeconds?: number;
  cache?: { key: string; paths: string[]; policy?: 'pull-push' | 'pull' | 'push'; when?: 'on_success' | 'on_failure' | 'always' };
  artifacts?: { name?: string; paths: string[]; when?: 'on_success' | 'on_failure' | 'always' };
  repoUrl?: string;
  sha?: string;
  ref?: string;
  services?: ServiceSpec[];
}

/** A job's services: entry, as .gitlab-ci.yml has it. */
export interface ServiceSpec {
  name: string;
  alias?: string;
  entrypoint?: string[];
  command?: string[];
  ports?: number[];
  variables?: Record<string, string>;
}

export interface JobPayload {
  id: number;
  token: string;
  allow_git_fetch: boolean;
  job_info: { id: number; name: string; stage: string; project_id: number; project_name: string; project_full_path?: string };
  git_info: { repo_url: string; ref: string; sha: string; before_sha: string; ref_type: string; refspecs: string[]; depth: number };
  runner_info: { timeout: number };
  variables: JobVariable[];
  steps: Array<{ name: string; script: string[]; timeout: number; when: string; allow_failure: boolean }>;
  image: { name: string };
  services: Array<{ name: string; alias?: string; entrypoint?: string[]; command?: string[]; ports?: Array<{ number: number; protocol: string }>; variables?: JobVariable[] }>;
  artifacts: Array<{ name: string; untracked: boolean; paths: string[]; when: string; artifact_type: string; artifact_format: string; expire_in: string }> | null;
  cache: Array<{ key: string; untracked: boolean; policy: string; paths: string[]; when: string; fallback_keys: string[] }> | null;
  credentials: unknown[];
  dependencies: unknown[];
  features: { trace_sections: boolean; failure_reasons: string[] };
}

/** The payload of job id for spec; serverUrl is the coordinator's. */
export function jobPayload(id: number, spec: JobSpec, serverUrl: string): JobPayload {
  const token = `job-token-${id}`;
  const variables: JobVariable[] = [
    ['CI', 'true'], ['GITLAB_CI', 'true'], ['CI_JOB_ID', String(id)], ['CI_JOB_NAME', 'e2e'], ['CI_JOB_STAGE', 'test'],
    ['CI_JOB_TOKEN', token], ['CI_PROJECT_ID', '1'], ['CI_PROJECT_NAME', 'e2e'], ['CI_PROJECT_PATH', projectPath],
    ['CI_PROJECT_PATH_SLUG', projectPath.replaceAll('/', '-')], ['CI_SERVER_URL', serverUrl.replace(/\/$/, '')],
    ['CI_COMMIT_SHA', spec.sha ?? ''], ['CI_COMMIT_REF_NAME', spec.ref ?? 'main'],
    ...(spec.image ? [['CI_JOB_IMAGE', spec.image] as [string, string]] : []),
    ...Object.entries(spec.variables ?? {}),
  ].map(([key, value]) => ({ key: key!, value: value!, public: true, masked: false, file: false }));
  const timeout = spec.timeoutSeconds ?? 600;
  return {
    id,
    token,
    allow_git_fetch: true,
    job_info: { id, name: 'e2e', stage: 'test', project_id: 1, project_name: 'e2e', project_full_path: projectPath },
    git_info: {
      repo_url: spec.repoUrl ?? '', ref: spec.ref ?? 'main', sha: spec.sha ?? '', before_sha: '0'.repeat(40), ref_type: 'branch',
      refspecs: ['+refs/heads/*:refs/remotes/origin/*'], depth: 20,
    },
    runner_info: { timeout },
    variables,
    steps: [
      { name: 'script', script: spec.script, timeout, when: 'on_success', allow_failure: false },
      ...(spec.afterScript ? [{ name: 'after_script', script: spec.afterScript, timeout, when: 'always', allow_failure: true }] : []),
    ],
    image: { name: spec.image ?? '' },
    // As GitLab sends them (common/network.go, Image): ports as objects, variables as a list.
    services: (spec.services ?? []).map((service) => ({
      name: service.name,
      ...(service.alias ? { alias: service.alias } : {}),
      ...(service.entrypoint ? { entrypoint: service.entrypoint } : {}),
      ...(service.command ? { command: service.command } : {}),
      ...(service.ports ? { ports: service.ports.map((number) => ({ number, protocol: 'tcp' })) } : {}),
      ...(service.variables ? { variables: Object.entries(service.variables).map(([key, value]) => ({ key, value, public: true })) } : {}),
    })),
    artifacts: spec.artifacts ? [{
      name: spec.artifacts.name ?? 'artifacts', untracked: false, paths: spec.artifacts.paths, when: spec.artifacts.when ?? 'on_success',
      artifact_type: 'archive', artifact_format: 'zip', expire_in: '1 day',
    }] : null,
    cache: spec.cache ? [{
      key: spec.cache.key, untracked: false, policy: spec.cache.policy ?? 'pull-push', paths: spec.cache.paths,
      when: spec.cache.when ?? 'on_success', fallback_keys: [],
    }] : null,
    credentials: [],
    dependencies: [],
    features: { trace_sections: true, failure_reasons: predefinedFailureReasons },
  };
}
