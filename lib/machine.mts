// A job's machine through its life: prepare starts it, run enters it once per
// stage, cleanup removes every trace of it. Storage and host mode are chosen
// here, once, and recorded so later stages use the same ones.
import { existsSync, mkdirSync, openSync, closeSync } from 'node:fs';
import { reportBuildExitCode } from './contract.mts';
import { ScriptFailed, SystemError } from './errors.mts';
import { chooseHostName, hostByName } from './host/select.mts';
import { imageNameFromReference, imageStoreDir, isServedImagePath, resolveImage } from './image.mts';
import {
  claimJobDir, jobDir, machineName, readJobRecord, removeJobDir, requireJobRecord, writeJobRecord,
  type JobRecord,
} from './job.mts';
import { log } from './log.mts';
import { buildNspawnArgs, systemdVersion } from './nspawn.mts';
import { imagePersonality } from './personality.mts';
import { buildsDir, cacheDir, type Settings } from './settings.mts';
import { runScriptInMachine } from './stage.mts';
import { backendByName, chooseBackendName } from './storage/select.mts';

export interface PrepareRequest {
  jobId: string;
  /** What the job asked for: an image name or a docker-style reference. */
  imageReference: string;
}

export async function prepareJob(settings: Settings, request: PrepareRequest): Promise<JobRecord> {
  const image = imageNameFromReference(request.imageReference);
  const imagePath = resolveImage(settings, image);
  const host = await hostByName(chooseHostName(settings));
  const backend = await backendByName(chooseBackendName(settings), settings);
  const dir = claimJobDir(settings, request.jobId);
  let record: JobRecord = {
    jobId: request.jobId,
    machine: machineName(request.jobId),
    image,
    imagePath,
    backend: backend.name,
    host: host.name,
    createdAt: new Date().toISOString(),
  };
  try {
    // Written before anything is started, so cleanup can always undo it.
    writeJobRecord(dir, record);
    // The record pins the version: old versions are deleted only when no
    // record names them (image-store.mts). One that was retired between the
    // resolve and the write is resolved again.
    for (let attempt = 1; !isServedImagePath(record.imagePath); attempt++) {
      if (attempt > 3) throw new SystemError(`image ${image} keeps changing under prepare`, 'retry; is a maintenance looping?');
      record = { ...record, imagePath: resolveImage(settings, image) };
      writeJobRecord(dir, record);
    }
    const personality = imagePersonality(record.imagePath);
    if (personality) writeJobRecord(dir, record = { ...record, personality });
    const storageArgs = await backend.prepare(record.imagePath, dir);
    const nspawnArgs = buildNspawnArgs({
      machine: record.machine,
      storageArgs,
      boot: false,
      register: host.registers,
      binds: [],
      systemdVersion: await systemdVersion(),
      personality,
    });
    record = await host.start({ nspawnArgs, jobDir: dir, boot: false, readyTimeoutMs: settings.readyTimeoutSeconds * 1000 }, record);
    writeJobRecord(dir, record);
  } catch (error) {
    await cleanupJob(settings, request.jobId).catch((cleanupError: Error) =>
      log.warn(`cleanup after failed prepare: ${cleanupError.message}`));
    throw error;
  }
  log.info(`job ${record.jobId}: machine ${record.machine} on image ${image} (${backend.name} storage, ${host.name} host)`);
  return record;
}

export interface StageRequest {
  jobId: string;
  scriptPath: string;
  stage: string;
  shell: string;
}

/** Runs a stage's script in the job's machine; throws ScriptFailed when it fails. */
export async function runStage(settings: Settings, request: StageRequest): Promise<void> {
  const record = requireJobRecord(settings, request.jobId);
  const host = await hostByName(record.host);
  const leader = await host.leaderOf(record);
  if (!leader) {
    throw new SystemError(`machine ${record.machine} of job ${request.jobId} is not running`, 'it stopped or was killed; the job has to be retried');
  }
  let scriptFd: number;
  try {
    scriptFd = openSync(request.scriptPath, 'r');
  } catch (error) {
    throw new SystemError(`cannot read script ${request.scriptPath}: ${(error as NodeJS.ErrnoException).code}`);
  }
  let code: number;
  try {
    ({ code } = await runScriptInMachine(leader, scriptFd, `${jobDir(settings, request.jobId)}/output`, request.shell, record.personality));
  } finally {
    closeSync(scriptFd);
  }
  reportBuildExitCode(code);
  if (code === 0) return;
  if (!(await host.leaderOf(record))) {
    throw new SystemError(`machine ${record.machine} stopped during stage ${request.stage}`);
  }
  throw new ScriptFailed(code, `stage ${request.stage} failed with exit code ${code}`);
}

/** Stops the machine and removes everything of the job. A job never prepared is fine. */
export async function cleanupJob(settings: Settings, jobId: string): Promise<boolean> {
  if (!existsSync(jobDir(settings, jobId))) {
    log.verbose(`job ${jobId}: nothing to clean up`);
    return false;
  }
  const record = readJobRecord(settings, jobId);
  if (record) {
    const host = await hostByName(record.host);
    await host.stop(record);
    const backend = await backendByName(record.backend, settings);
    await backend.release(jobDir(settings, jobId));
  }
  await removeJobDir(settings, jobId);
  log.verbose(`job ${jobId}: cleaned up`);
  // The last job on an old version of its image deletes it.
  if (record && existsSync(imageStoreDir(settings, record.image))) {
    const { removeUnusedVersionsQuietly } = await import('./image-store.mts');
    await removeUnusedVersionsQuietly(settings, record.image).catch((error: Error) =>
      log.warn(`removing unused versions of image ${record.image}: ${error.message}`));
  }
  return true;
}

/** Host directories the executor config promises: created before the first job needs them. */
export function ensureRunnerDirs(settings: Settings): void {
  for (const dir of [settings.root, buildsDir(settings), cacheDir(settings)]) mkdirSync(dir, { recursive: true });
}
