// Plays gitlab-runner's part when the real one cannot be built here: one
// `run-single` job against the coordinator, through the custom executor
// configured by our [[runners]] section. It follows gitlab-runner's
// executors/custom and common/build.go rather than our own expectations:
// - each executor call is its own process group, cwd a per-job temp dir, with
//   TMPDIR, BUILD_FAILURE_EXIT_CODE=1, SYSTEM_FAILURE_EXIT_CODE=2,
//   BUILD_EXIT_CODE_FILE, JOB_RESPONSE_FILE and every job variable as
//   CUSTOM_ENV_<KEY> on top of the runner's own environment;
// - config_exec + prepare_exec are tried up to 3 times, 3 s apart, unless
//   one exits 1 (a build error); cleanup_exec runs after each failed try;
// - exit 1 is script_failure with the code from BUILD_EXIT_CODE_FILE, 2 or
//   anything else runner_system_failure;
// - cancel (Job-Status: canceling on a trace or state update) and the job
//   timeout send SIGTERM to the running stage's process group, SIGKILL after
//   graceful_kill_timeout; after_script and the *_on_failure stages still run;
// - run_exec gets <script> <stage> for prepare_script, get_sources,
//   restore_cache, build_script, after_script, archive_cache[_on_failure],
//   upload_artifacts_on_{success,failure} and cleanup_file_variables.
// Stage scripts are bash, like the real ones in spirit, and call the
// `gitlab-runner` helper commands inside the machine the way the real ones do.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobPayload } from './job-payload.mts';
import type { RunnerSection } from './runner-config.mts';
import { buildStageScripts, type ExecutorConfig } from './stage-scripts.mts';

interface Failure { reason: string; exitCode?: number; message: string }
type Outcome = { ok: true } | { ok: false; failure: Failure; build: boolean };

export async function simulateRunSingle(runner: RunnerSection, env: NodeJS.ProcessEnv): Promise<string> {
  const runnerLog: string[] = [];
  const api = (path: string) => new URL(`api/v4/${path}`, runner.url);
  const requested = await fetch(api('jobs/request'), {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token: runner.token, info: { name: 'gitlab-runner', version: 'simulated', executor: 'custom', features: { variables: true, cancel_gracefully: true } } }),
  });
  if (requested.status !== 201) return `no job: ${requested.status}`;
  const job = await requested.json() as JobPayload;
  const jobApi = (path = '') => api(`jobs/${job.id}${path}`);

  // The log goes to the coordinator in PATCHes, as gitlab-runner's trace does;
  // with nothing new to send, a state update asks whether the job was cancelled.
  let trace = '';
  let sent = 0;
  const aborter = new AbortController();
  const checkRemote = (response: Response) => {
    if (['canceling', 'canceled'].includes(response.headers.get('job-status') ?? '')) aborter.abort('canceled');
  };
  const flush = async () => {
    const chunk = Buffer.from(trace).subarray(sent);
    if (!chunk.length) {
      checkRemote(await fetch(jobApi(), { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: job.token, state: 'running' }) }));
      return;
    }
    const response = await fetch(jobApi('/trace?debug_trace=false'), {
      method: 'PATCH', body: chunk,
      headers: { 'JOB-TOKEN': job.token, 'Content-Type': 'text/plain', 'Content-Range': `${sent}-${sent + chunk.length - 1}` },
    });
    if (response.status === 202) sent += chunk.length;
    else if (response.status === 416) sent = Number(response.headers.get('range')?.split('-')[1] ?? 0);
    checkRemote(response);
  };
  let flushing = Promise.resolve();
  const ticker = setInterval(() => { flushing = flushing.then(flush).catch(() => undefined); }, 300);
  const timeout = setTimeout(() => aborter.abort('timeout'), job.runner_info.timeout * 1000);
  const log = (text: string) => { trace += text.endsWith('\n') ? text : `${text}\n`; };

  const tempDir = mkdtempSync(`${tmpdir()}/custom-executor`);
  const codeFile = `${tempDir}/build_exit_code`;
  writeFileSync(`${tempDir}/response.json`, JSON.stringify(job));
  const custom = runner.custom;
  const gracefulMs = (custom.graceful_kill_timeout ?? 600) * 1000;
  const variables = Object.fromEntries(job.variables.map(({ key, value }) => [key, value]));
  const executorEnv = (config?: ExecutorConfig): NodeJS.ProcessEnv => ({
    ...env, ...config?.job_env,
    TMPDIR: tempDir, BUILD_FAILURE_EXIT_CODE: '1', SYSTEM_FAILURE_EXIT_CODE: '2',
    BUILD_EXIT_CODE_FILE: codeFile, JOB_RESPONSE_FILE: `${tempDir}/response.json`,
    ...Object.fromEntries(Object.entries({ ...variables, CI_JOB_SERVICES: '' }).map(([key, value]) => [`CUSTOM_ENV_${key}`, value])),
  });

  /** One executor call; the verdict as gitlab-runner's command.go reads it. */
  const call = async (argv: string[], options: { env: NodeJS.ProcessEnv; output: (text: string) => void; signal?: AbortSignal }): Promise<Outcome> => {
    rmSync(codeFile, { force: true });
    const child = spawn(argv[0]!, argv.slice(1), { cwd: tempDir, env: options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8').on('data', options.output);
    child.stderr.setEncoding('utf8').on('data', options.output);
    const stop = () => {
      try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* gone */ }
      setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, gracefulMs).unref();
    };
    if (options.signal?.aborted) stop();
    options.signal?.addEventListener('abort', stop);
    const [code] = await new Promise<[number | null]>((resolve) => child.on('close', (exitCode) => resolve([exitCode])));
    options.signal?.removeEventListener('abort', stop);
    if (options.signal?.aborted) return { ok: false, build: true, failure: abortFailure(options.signal.reason as string, job) };
    if (code === 0) return { ok: true };
    if (code === 1) {
      let exitCode = 1;
      try { exitCode = parseInt(readFileSync(codeFile, 'utf8'), 10); } catch { /* no file: 1 */ }
      return { ok: false, build: true, failure: { reason: 'script_failure', exitCode, message: `exit status ${exitCode}` } };
    }
    const message = code === 2 ? 'exit status 2' : `unknown Custom executor executable exit code ${code}`;
    return { ok: false, build: false, failure: { reason: 'runner_system_failure', message } };
  };
  const cleanup = (config?: ExecutorConfig) => call([custom.cleanup_exec, ...(custom.cleanup_args ?? [])], {
    env: executorEnv(config), output: (text) => runnerLog.push(text),
  });

  log(`Running with gitlab-runner (simulated) on ${runner.name}\nPreparing the "custom" executor`);
  let failure: Failure | undefined;
  let config: ExecutorConfig | undefined;
  for (let attempt = 1; attempt <= 3; attempt++) {
    let json = '';
    let outcome = await call([custom.config_exec, ...(custom.config_args ?? [])], {
      env: executorEnv(), output: (text) => (json += text), signal: aborter.signal,
    });
    if (outcome.ok) {
      config = JSON.parse(json) as ExecutorConfig;
      log(`Using Custom executor with driver ${config.driver?.name} ${config.driver?.version}...`);
      outcome = await call([custom.prepare_exec, ...(custom.prepare_args ?? [])], { env: executorEnv(config), output: log, signal: aborter.signal });
    }
    if (outcome.ok) {
      failure = undefined;
      break;
    }
    failure = outcome.failure;
    await cleanup(config);
    if (outcome.build || aborter.signal.aborted || attempt === 3) break;
    log(`WARNING: Preparation failed: ${failure.message}\nWill be retried in 3s ...`);
    await sleep(3000);
  }

  if (!failure && config) {
    const stages = buildStageScripts(job, runner, config);
    for (const [stage, script, when] of stages) {
      const afterFailure = failure !== undefined;
      if (when === 'on_success' ? afterFailure : when === 'on_failure' ? !afterFailure : false) continue;
      const path = `${mkdtempSync(`${tempDir}/script`)}/script.`;
      writeFileSync(path, script, { mode: 0o700 });
      // Once the job failed or was stopped, the remaining stages run on their own clock.
      const outcome = await call([custom.run_exec, ...(custom.run_args ?? []), path, stage], {
        env: executorEnv(config), output: log, signal: afterFailure ? undefined : aborter.signal,
      });
      if (!outcome.ok && !afterFailure && stage !== 'after_script') failure = outcome.failure;
      if (!outcome.ok && stage === 'after_script') log(`WARNING: after_script failed: ${outcome.failure.message}`);
    }
    await cleanup(config);
  }

  clearTimeout(timeout);
  log(failure ? `ERROR: Job failed: ${failure.message}` : 'Job succeeded');
  clearInterval(ticker);
  await flushing;
  await flush();
  rmSync(tempDir, { recursive: true, force: true });
  await fetch(jobApi(), {
    method: 'PUT', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      token: job.token, state: failure ? 'failed' : 'success', failure_reason: failure ? supportedReason(failure.reason, job) : '',
      exit_code: failure?.exitCode, output: { bytesize: Buffer.byteLength(trace) },
    }),
  });
  return runnerLog.join('');
}

function abortFailure(reason: string, job: JobPayload): Failure {
  return reason === 'timeout'
    ? { reason: 'job_execution_timeout', message: `execution took longer than ${job.runner_info.timeout}s seconds` }
    : { reason: 'job_canceled', message: 'canceled' };
}

/** gitlab-runner's failure_reason_mapper: what GitLab does not list becomes unknown_failure. */
function supportedReason(reason: string, job: JobPayload): string {
  const always = ['script_failure', 'runner_system_failure', 'job_execution_timeout'];
  return [...always, ...job.features.failure_reasons].includes(reason) ? reason : 'unknown_failure';
}
