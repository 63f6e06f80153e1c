// A job's machine through its life: prepare starts it (prepare.mts), run has
// its stage agent run each stage, cleanup removes every trace of it.
import { accessSync, closeSync, constants, existsSync, fstatSync, mkdirSync, openSync } from 'node:fs';
import { lastStage, reportBuildExitCode } from '../contract.mts';
import { ScriptFailed, SystemError } from '../errors.mts';
import { hostByName, missingForSystemd, stopMachinesWhere } from '../host/select.mts';
import { runtimeDropInDir, sliceName, unitName } from '../host/systemd-unit.mts';
import { imageStoreDir } from '../image/resolve.mts';
import { log, writeAll } from '../log.mts';
import { namesPath } from '../nspawn.mts';
import { isLive, sleep } from '../proc.mts';
import type { ServiceRecord } from '../services/machines.mts';
import { buildsDir, cacheDir, type Settings } from '../settings.mts';
import { backendByName } from '../storage/select.mts';
import { noteFailedStage } from './keep-failed.mts';
import { jobDir, machineName, readJobRecord, removeJobDir, requireJobRecord, type BackendName, type JobRecord } from './record.mts';
import { findAgent, runScriptThroughAgent, waitForAgent, type Agent } from './stage.mts';
import { ioDirOf } from './stage-agent.mts';

export interface StageRequest {
  jobId: string;
  scriptPath: string;
  stage: string;
  shell: string;
  /** Where the output goes instead of our stdout (exec's per-job prefix). */
  output?: (chunk: Uint8Array) => void;
  cancel?: AbortSignal;
}

/**
 * The machine's stage agent, once it reads its requests: right after the
 * start, or after a reboot inside the machine, the machine's systemd may
 * still be starting it.
 */
export async function awaitAgent(record: JobRecord, dir: string, leaderOf: () => Promise<number | undefined>, timeoutMs: number): Promise<Agent> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    const leader = await leaderOf();
    if (!leader) throw new SystemError(`machine ${record.machine} of job ${record.jobId} is not running`, 'it stopped or was killed; the job has to be retried');
    const agent = findAgent(leader);
    if (agent && (await waitForAgent(ioDirOf(dir), () => isLive(agent.pid, agent.startTime), Math.max(0, deadline - Date.now())))) return agent;
    if (Date.now() > deadline) {
      throw new SystemError(`machine ${record.machine} has no stage agent`, `its log: ${dir}/nspawn.log${record.unit ? `, journalctl -M ${record.machine} -u nspawn-runner-agent` : ''}`);
    }
    await sleep(delay);
  }
}

/** Runs a stage's script in the job's machine; throws ScriptFailed when it fails. */
export async function runStage(settings: Settings, request: StageRequest): Promise<void> {
  const record = requireJobRecord(settings, request.jobId);
  const host = await hostByName(record.host);
  const dir = jobDir(settings, request.jobId);
  const agent = await awaitAgent(record, dir, () => host.leaderOf(record), settings.readyTimeoutSeconds * 1000);
  let scriptFd: number;
  try {
    scriptFd = openSync(request.scriptPath, 'r');
  } catch (error) {
    throw new SystemError(`cannot read script ${request.scriptPath}: ${(error as NodeJS.ErrnoException).code}`);
  }
  let outcome;
  const stopStreaming = record.debugServices && record.services ? await streamServicesDuring(record.services, request.output) : undefined;
  try {
    if (!fstatSync(scriptFd).isFile()) throw new SystemError(`script ${request.scriptPath} is not a regular file`);
    outcome = await runScriptThroughAgent({
      ioDir: ioDirOf(dir), agent, scriptFd, shell: request.shell, stage: request.stage, output: request.output, cancel: request.cancel,
    });
  } finally {
    closeSync(scriptFd);
    stopStreaming?.();
  }
  if (outcome === 'agent-gone') {
    // A machine that stopped is the host's failure, retried by GitLab. One
    // that runs on (a reboot inside the job, the job killing the agent) was
    // the job's own doing.
    if (!(await host.leaderOf(record))) throw new SystemError(`machine ${record.machine} stopped during stage ${request.stage}`);
    throw new ScriptFailed(1, `stage ${request.stage} ended with the machine's stage agent (a reboot or a kill inside the machine)`);
  }
  reportBuildExitCode(outcome.code);
  if (request.stage === lastStage) await reportResources(record, await host.leaderOf(record));
  if (outcome.code !== 0) {
    noteFailedStage(settings, request.jobId, request.stage, outcome.code);
    throw new ScriptFailed(outcome.code, `stage ${request.stage} failed with exit code ${outcome.code}`);
  }
}

/**
 * CI_DEBUG_SERVICES: the services' output reaches the job log while a stage
 * runs, a second at most after it was written, and all of it by the stage's end.
 */
async function streamServicesDuring(services: readonly ServiceRecord[], output: StageRequest['output']): Promise<() => void> {
  const { streamServiceLogs } = await import('../services/logs.mts');
  const write = (text: string) => (output ? output(Buffer.from(text)) : writeAll(1, text));
  const flush = () => streamServiceLogs(services, write);
  flush();
  const timer = setInterval(flush, 1000);
  return () => {
    clearInterval(timer);
    flush();
  };
}

/** The job log's last line: what the machine used (job/resources.mts, loaded only for this stage). */
async function reportResources(record: JobRecord, leader: number | undefined): Promise<void> {
  if (!leader) return;
  const { formatResourceLine, measureJob } = await import('./resources.mts');
  log.info(formatResourceLine(measureJob(record, leader)));
}

/**
 * Stops the machine and removes everything of the job. A job never prepared
 * is fine. The machine is also looked for from the host's side, so a record
 * that is unreadable, corrupt or stale cannot leave it running; what cannot
 * be stopped or removed is named in the error.
 */
export async function cleanupJob(settings: Settings, jobId: string): Promise<boolean> {
  const dir = jobDir(settings, jobId);
  if (!existsSync(dir)) {
    log.verbose(`job ${jobId}: nothing to clean up`);
    return false;
  }
  let record: JobRecord | undefined;
  try {
    record = readJobRecord(settings, jobId);
  } catch (error) {
    log.warn(`${(error as Error).message}: looking for machine ${machineName(jobId)} on the host instead`);
  }
  let stoppedItsUnit = false;
  if (record) {
    // Its own host mode stops it best (a unit through systemd); the search
    // below is the safety net, so a failure here is only worth a warning.
    await hostByName(record.host).then((host) => host.stop(record)).then(() => {
      stoppedItsUnit = record.host === 'systemd' && record.machine === machineName(jobId);
    }).catch((error: Error) => log.warn(`job ${jobId}: stopping ${record.machine}: ${error.message}`));
  }
  const hasServices = existsSync(`${dir}/services`);
  if (record?.services) await stopServiceMachines(record);
  // The unit named after the job's machine is the one just stopped, if the
  // record led to it: asking systemd again would cost every cleanup a
  // process. systemd-nspawn processes are looked for in any case; service
  // machines are named after the job's (services/machines.mts).
  const unitPattern = hasServices ? unitName(`${machineName(jobId)}*`) : !stoppedItsUnit && unitName(machineName(jobId));
  const stopped = await stopMachinesWhere((commandLine) => namesPath(commandLine, `${dir}/`), unitPattern);
  if (stopped.failed.length) {
    throw new SystemError(`job ${jobId}: cannot stop its machine: ${stopped.failed.join('; ')}`,
      `its files stay in ${dir}; retry cleanup, or run "nspawn-runner gc" later`);
  }
  if (stopped.machines.length && record) log.warn(`job ${jobId}: stopped ${stopped.machines.join(', ')}, which its record did not lead to`);
  // pasta of the job's pod; the namespace goes with the job directory's mounts.
  if (record?.pod || existsSync(`${dir}/netns`)) {
    const { stopPod } = await import('../services/pod.mts');
    await stopPod(record?.pod, dir).catch((error: Error) => log.warn(`job ${jobId}: ${error.message}`));
  }
  const left: string[] = [];
  // The slice of a job with services, empty by now (systemd hosts). Its
  // drop-ins tell of one a prepare made before it could record it.
  const slice = sliceName(machineName(jobId));
  if (record?.slice || existsSync(runtimeDropInDir(slice)) || (!record && hasServices && !missingForSystemd())) {
    const { removeJobSlice } = await import('../host/systemd-slice.mts');
    await removeJobSlice(machineName(jobId)).catch((error: Error) => left.push(`slice ${slice} (${error.message})`));
  }
  // Without a record the backend is unknown: each removes only what it made.
  const layers = hasServices ? [dir, ...(await import('../services/machines.mts')).listServiceDirs(dir)] : [dir];
  for (const name of record ? [record.backend] : backendNames) {
    for (const layer of layers) {
      await backendByName(name, settings).then((backend) => backend.release(layer)).catch((error: Error) =>
        left.push(`${name} storage (${error.message})`));
    }
  }
  await removeJobDir(settings, jobId).catch((error: Error) => left.push(`${dir} (${error.message})`));
  if (left.length) {
    throw new SystemError(`job ${jobId}: its machine is stopped, but cleanup cannot remove ${left.join('; ')}`,
      'remove it by hand; a later cleanup or gc retries');
  }
  log.verbose(`job ${jobId}: cleaned up`);
  const pulled = [record?.oci, ...(record?.services ?? []).map((service) => service.oci)].filter((oci) => oci !== undefined);
  if (pulled.length) {
    const { touchImage } = await import('../oci/store.mts');
    for (const oci of pulled) touchImage(settings, oci.key);
  }
  // The last job on an old version of its image deletes it.
  if (record && !record.oci && existsSync(imageStoreDir(settings, record.image))) {
    const { removeUnusedVersionsQuietly } = await import('../image/retire.mts');
    await removeUnusedVersionsQuietly(settings, record.image).catch((error: Error) =>
      log.warn(`removing unused versions of image ${record.image}: ${error.message}`));
  }
  return true;
}

const backendNames: readonly BackendName[] = ['btrfs', 'tmpfs', 'overlay'];

/**
 * Each service machine through its host mode, as the job's own; one that
 * will not stop is left to the search by command line that follows.
 */
async function stopServiceMachines(record: JobRecord): Promise<void> {
  const host = await hostByName(record.host);
  const { serviceAsMachine } = await import('../services/machines.mts');
  await Promise.all((record.services ?? []).map((service) => host.stop(serviceAsMachine(record, service))
    .catch((error: Error) => log.warn(`job ${record.jobId}: stopping service machine ${service.machine}: ${error.message}`))));
}

/** Host directories the executor config promises: created before the first job needs them. */
export function ensureRunnerDirs(settings: Settings): void {
  // Node's recursive mkdir reports a read-only filesystem as ENOENT: ask first.
  if (existsSync(settings.root)) accessSync(settings.root, constants.W_OK);
  for (const dir of [settings.root, buildsDir(settings), cacheDir(settings)]) mkdirSync(dir, { recursive: true });
}
