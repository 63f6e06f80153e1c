// A stand-in for GitLab: the part of its runner API (/api/v4) that
// `gitlab-runner run-single` talks to, on 127.0.0.1 at a random port. Jobs
// are queued by the test; whatever the runner sends back (state updates, the
// log, artifacts) is recorded for the test to assert on. Endpoints, status
// codes and headers follow gitlab-runner's network/gitlab.go: 201/204 for
// jobs/request, 200 for PUT jobs/:id, 202 + Range + Job-Status for the trace
// PATCH (416 when Content-Range does not continue the log), 201 for artifacts.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

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
  services: unknown[];
  artifacts: Array<{ name: string; untracked: boolean; paths: string[]; when: string; artifact_type: string; artifact_format: string; expire_in: string }> | null;
  cache: Array<{ key: string; untracked: boolean; policy: string; paths: string[]; when: string; fallback_keys: string[] }> | null;
  credentials: unknown[];
  dependencies: unknown[];
  features: { trace_sections: boolean; failure_reasons: string[] };
}

export interface ArtifactUpload {
  query: Record<string, string>;
  token: string | undefined;
  filename: string;
  content: Buffer;
}

/** One job as the coordinator sees it: what it sent, and what the runner reported. */
export interface ServerJob {
  payload: JobPayload;
  /** pending until a runner picks it up, then running until a final update. */
  state: 'pending' | 'running' | 'success' | 'failed';
  failureReason?: string;
  exitCode?: number;
  trace: string;
  updates: Array<Record<string, unknown>>;
  artifacts: ArtifactUpload[];
  /** Set by cancel(): answered as Job-Status: canceling until the runner finishes. */
  canceling: boolean;
}

const projectPath = 'nspawn-runner/e2e';
const predefinedFailureReasons = ['script_failure', 'runner_system_failure', 'job_execution_timeout', 'unknown_failure'];

export class Coordinator {
  readonly url: string;
  readonly runnerToken = 'glrt-nspawn-runner-e2e';
  readonly jobs = new Map<number, ServerJob>();
  /** Requests to endpoints this stand-in does not know: a test can assert there were none. */
  readonly unknownRequests: string[] = [];
  private readonly queue: number[] = [];
  private readonly traceWaiters: Array<{ id: number; pattern: RegExp; resolve: () => void }> = [];
  private readonly server: Server;
  private nextId: number;

  private constructor(server: Server, firstJobId: number) {
    this.server = server;
    this.nextId = firstJobId;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  /** firstJobId: job ids name machines (run-<id>); keep them apart from other suites' ids. */
  static async start(firstJobId: number): Promise<Coordinator> {
    let coordinator: Coordinator | undefined;
    const server = createServer((request, response) => {
      coordinator!.handle(request, response).catch((error: Error) => {
        response.writeHead(500).end(error.message);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    coordinator = new Coordinator(server, firstJobId);
    return coordinator;
  }

  /** Queues a job; the next jobs/request gets it. */
  enqueue(spec: JobSpec): ServerJob {
    const id = this.nextId++;
    const job: ServerJob = { payload: jobPayload(id, spec, this.url), state: 'pending', trace: '', updates: [], artifacts: [], canceling: false };
    this.jobs.set(id, job);
    this.queue.push(id);
    return job;
  }

  /** Cancels a running job the way GitLab does: the next trace or state update answers "canceling". */
  cancel(id: number): void {
    this.jobs.get(id)!.canceling = true;
  }

  /** Resolves once the job's log matches pattern (an event, not a timer). */
  waitForTrace(id: number, pattern: RegExp): Promise<void> {
    if (pattern.test(this.jobs.get(id)!.trace)) return Promise.resolve();
    return new Promise((resolve) => this.traceWaiters.push({ id, pattern, resolve }));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', this.url);
    const body = await readBody(request);
    const route = `${request.method} ${url.pathname}`;
    let match: RegExpMatchArray | null;
    if (route === 'POST /api/v4/jobs/request') return this.requestJob(body, response);
    if ((match = route.match(/^PUT \/api\/v4\/jobs\/(\d+)$/))) return this.updateJob(Number(match[1]), body, response);
    if ((match = route.match(/^PATCH \/api\/v4\/jobs\/(\d+)\/trace$/))) return this.patchTrace(Number(match[1]), request, body, response);
    if ((match = route.match(/^POST \/api\/v4\/jobs\/(\d+)\/artifacts$/))) return this.uploadArtifacts(Number(match[1]), url, request, body, response);
    this.unknownRequests.push(route);
    response.writeHead(404, { 'Content-Type': 'application/json' }).end('{"message":"404 Not Found"}');
  }

  private requestJob(body: Buffer, response: ServerResponse): void {
    const { token } = JSON.parse(body.toString() || '{}') as { token?: string };
    if (token !== this.runnerToken) {
      response.writeHead(403).end('{"message":"403 Forbidden"}');
      return;
    }
    const id = this.queue.shift();
    if (id === undefined) {
      response.writeHead(204).end();
      return;
    }
    const job = this.jobs.get(id)!;
    job.state = 'running';
    response.writeHead(201, { 'Content-Type': 'application/json' }).end(JSON.stringify(job.payload));
  }

  private jobFor(id: number, token: string | undefined, response: ServerResponse): ServerJob | undefined {
    const job = this.jobs.get(id);
    if (!job) {
      response.writeHead(404).end();
      return undefined;
    }
    if (token !== job.payload.token) {
      response.writeHead(403).end();
      return undefined;
    }
    return job;
  }

  /** The remote state gitlab-runner reads from Job-Status: it cancels on "canceling". */
  private remoteState(job: ServerJob): string {
    return job.canceling && job.state === 'running' ? 'canceling' : job.state;
  }

  private updateJob(id: number, body: Buffer, response: ServerResponse): void {
    const update = JSON.parse(body.toString() || '{}') as Record<string, unknown>;
    const job = this.jobFor(id, update.token as string | undefined, response);
    if (!job) return;
    job.updates.push(update);
    const state = update.state as string | undefined;
    if (state === 'success' || state === 'failed') {
      job.state = state;
      job.failureReason = update.failure_reason as string | undefined;
      job.exitCode = update.exit_code as number | undefined;
    }
    response.writeHead(200, { 'Job-Status': this.remoteState(job), 'X-GitLab-Trace-Update-Interval': '1' }).end();
  }

  private patchTrace(id: number, request: IncomingMessage, body: Buffer, response: ServerResponse): void {
    const job = this.jobFor(id, header(request, 'job-token'), response);
    if (!job) return;
    const [start] = (header(request, 'content-range') ?? '').split('-').map(Number);
    const length = Buffer.byteLength(job.trace);
    if (start !== length) {
      // gitlab-runner resends from the offset in Range.
      response.writeHead(416, { Range: `0-${length}`, 'Job-Status': this.remoteState(job) }).end();
      return;
    }
    job.trace += body.toString();
    for (const waiter of [...this.traceWaiters]) {
      if (waiter.id === id && waiter.pattern.test(job.trace)) {
        this.traceWaiters.splice(this.traceWaiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
    response.writeHead(202, {
      Range: `0-${Buffer.byteLength(job.trace)}`,
      'Job-Status': this.remoteState(job),
      'X-GitLab-Trace-Update-Interval': '1',
    }).end();
  }

  private uploadArtifacts(id: number, url: URL, request: IncomingMessage, body: Buffer, response: ServerResponse): void {
    const job = this.jobFor(id, header(request, 'job-token'), response);
    if (!job) return;
    const file = parseMultipartFile(header(request, 'content-type') ?? '', body);
    if (!file) {
      response.writeHead(400).end('{"message":"no file"}');
      return;
    }
    job.artifacts.push({ query: Object.fromEntries(url.searchParams), token: header(request, 'job-token'), ...file });
    response.writeHead(201, { 'Content-Type': 'application/json' }).end('{}');
  }
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The "file" part of a multipart/form-data body, as gitlab-runner's artifacts upload sends it. */
export function parseMultipartFile(contentType: string, body: Buffer): { filename: string; content: Buffer } | undefined {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType);
  if (!boundary) return undefined;
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  let position = body.indexOf(delimiter);
  while (position !== -1) {
    const headersEnd = body.indexOf('\r\n\r\n', position);
    const next = body.indexOf(delimiter, position + delimiter.length);
    if (headersEnd === -1 || next === -1) return undefined;
    const headers = body.subarray(position + delimiter.length, headersEnd).toString();
    const disposition = /name="file"; filename="([^"]*)"/.exec(headers);
    // The part's content ends with the CRLF before the next delimiter.
    if (disposition) return { filename: disposition[1]!, content: body.subarray(headersEnd + 4, next - 2) };
    position = next;
  }
  return undefined;
}

/** The job JSON GitLab sends (gitlab-runner's common/spec Job), for one test job. */
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
    services: [],
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
