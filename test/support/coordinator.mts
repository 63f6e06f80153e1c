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
import { jobPayload, type JobPayload, type JobSpec } from './job-payload.mts';

export type { JobPayload, JobSpec } from './job-payload.mts';

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
