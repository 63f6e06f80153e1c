// prepare: a job's machine, started. Each step reads as one line of the
// shell prototype it replaced:
//   resolve the image, choose host mode and storage     planJob
//   claim .jobs/ID and write the record first            claimJobDir, newJobRecord
//   pin the image version in the record                  pinImageVersion
//   with services: make the job's pod (network)         makePod
//   make the writable layer, start systemd-nspawn        startMachine, startService
//   wait for the stage agent and the services' ports    awaitAgent, awaitServices
// Storage and host mode are chosen here, once, and recorded so later stages
// use the same ones. A failure anywhere cleans up what was made.
import type { JobImage } from '../contract.mts';
import { SystemError } from '../errors.mts';
import { machineFields, type HostMode } from '../host/host.mts';
import { chooseHostName, hostByName } from '../host/select.mts';
import { bootArguments, bootBinds, createBootFiles } from '../host/systemd-boot.mts';
import { imagePersonality } from '../image/personality.mts';
import { isServedImagePath } from '../image/resolve.mts';
import { log } from '../log.mts';
import { buildNspawnArgs, privilegedEnv, systemdVersion, type Bind } from '../nspawn.mts';
import type { ResolvedImage } from '../oci/resolve.mts';
import type { PulledImageMeta } from '../oci/store.mts';
import { owningAncestorOf, startTimeOf } from '../proc.mts';
import type { PlannedService } from '../services/machines.mts';
import type { JobServices } from '../services/spec.mts';
import type { RecordUpdate } from '../services/start.mts';
import type { Settings } from '../settings.mts';
import type { StorageBackend } from '../storage/backend.mts';
import { backendByName, chooseBackendName } from '../storage/select.mts';
import { awaitAgent, cleanupJob } from './machine.mts';
import { claimJobDir, machineName, writeJobRecord, type JobRecord } from './record.mts';
import { buildShares, findRunnerBinary } from './shares.mts';
import { agentBinds, agentPayload, createAgentFiles, defaultStageSetup, type StageSetup } from './stage-agent.mts';

export interface PrepareRequest {
  jobId: string;
  /** What the job asked for: an image name or a docker-style reference. */
  imageReference: string;
  /** More binds into the machine (exec's project directory). */
  binds?: readonly Bind[];
  /** The job's image: object (pull policy, platform), when the image is the job's. */
  jobImage?: JobImage;
  /** The job's DOCKER_AUTH_CONFIG, for private registries. */
  jobAuthConfig?: string;
  /** The job's services:, each started in a machine of its own (services/). */
  services?: JobServices;
}

/** What a job will run on and how, decided before anything is made. */
interface JobPlan {
  resolve(): Promise<ResolvedImage>;
  image: ResolvedImage;
  host: HostMode;
  backend: StorageBackend;
  runnerBinary: string | undefined;
  services: PlannedService[];
}

export async function prepareJob(settings: Settings, request: PrepareRequest): Promise<JobRecord> {
  const plan = await planJob(settings, request);
  const dir = claimJobDir(settings, request.jobId);
  let record = newJobRecord(request.jobId, plan);
  const update: RecordUpdate = (change) => {
    writeJobRecord(dir, record = change(record));
    return record;
  };
  try {
    record = await pinImageVersion(dir, record, plan);
    const services = plan.services.length ? await import('../services/start.mts') : undefined;
    if (services) await services.makePod(settings, plan.host, dir, update, plan.services, request.services!.debug);
    // Service machines start beside the job's: a service costs prepare its
    // own start only. Both are settled before a failure goes on to cleanup,
    // which must not run while a unit is still being made.
    const [started, serviceRecords] = settledOrThrow(await Promise.allSettled([
      startMachine(settings, dir, record, plan, [...(request.binds ?? []), ...(services && record.pod ? services.podBinds(record.pod) : [])], update),
      services?.startServices({ settings, host: plan.host, backend: plan.backend }, plan.services, update) ?? [],
    ]));
    update((latest) => ({ ...latest, ...machineFields(started) }));
    await Promise.all([
      awaitAgent(record, dir, () => plan.host.leaderOf(started), settings.readyTimeoutSeconds * 1000),
      services?.awaitServices(plan.host, record, serviceRecords, settings.servicesTimeoutSeconds),
    ]);
    update((latest) => ({ ...latest, state: 'running' }));
  } catch (error) {
    await cleanupJob(settings, request.jobId).catch((cleanupError: Error) =>
      log.warn(`cleanup after failed prepare: ${cleanupError.message}`));
    throw error;
  }
  const digest = plan.image.kind === 'oci' ? ` (${plan.image.meta.digest})` : '';
  log.info(`job ${record.jobId}: machine ${record.machine} on image ${record.image}${digest} (${plan.backend.name} storage, ${plan.host.name} host)`);
  log.verbose(plan.runnerBinary ? `sharing ${plan.runnerBinary} as gitlab-runner` : 'no gitlab-runner binary to share: cache and artifacts need one in the image');
  return record;
}

function settledOrThrow<A, B>([a, b]: [PromiseSettledResult<A>, PromiseSettledResult<B>]): [A, B] {
  if (a.status === 'rejected') throw a.reason;
  if (b.status === 'rejected') throw b.reason;
  return [a.value, b.value];
}

async function planJob(settings: Settings, request: PrepareRequest): Promise<JobPlan> {
  const { resolveJobImage } = await import('../oci/resolve.mts');
  const resolve = () => resolveJobImage(settings, { written: request.imageReference, job: request.jobImage, jobAuthConfig: request.jobAuthConfig });
  const [image, services] = await Promise.all([
    resolve(),
    request.services?.services.length
      ? import('../services/machines.mts').then(({ planServices }) => planServices(settings, request.services!, request.jobAuthConfig))
      : [],
  ]);
  return {
    resolve,
    image,
    host: await hostByName(chooseHostName(settings)),
    backend: await backendByName(chooseBackendName(settings), settings),
    runnerBinary: findRunnerBinary(settings.runnerBinary, { parentPid: process.ppid, pathEnv: process.env.PATH }),
    services,
  };
}

function newJobRecord(jobId: string, plan: JobPlan): JobRecord {
  const owner = owningAncestorOf(process.pid);
  const { image } = plan;
  return {
    jobId,
    machine: machineName(jobId),
    image: image.name,
    imagePath: image.path,
    backend: plan.backend.name,
    host: plan.host.name,
    createdAt: new Date().toISOString(),
    state: 'preparing',
    preparerPid: process.pid,
    preparerStartTime: startTimeOf(process.pid),
    ownerPid: owner,
    ownerStartTime: startTimeOf(owner),
    ...(image.kind === 'oci' ? { oci: { key: image.meta.key, digest: image.meta.digest } } : {}),
  };
}

/**
 * Writes the record before anything is started, so cleanup can always undo
 * it. The record pins the image version: old versions are deleted only when
 * no record names them (image/store.mts). One that was retired between the
 * resolve and the write is resolved again.
 */
async function pinImageVersion(dir: string, record: JobRecord, plan: JobPlan): Promise<JobRecord> {
  writeJobRecord(dir, record);
  for (let attempt = 1; !isServedImagePath(record.imagePath); attempt++) {
    if (attempt > 3) throw new SystemError(`image ${record.image} keeps changing under prepare`, 'retry; is a maintenance looping?');
    plan.image = await plan.resolve();
    writeJobRecord(dir, record = { ...record, imagePath: plan.image.path });
  }
  const personality = imagePersonality(record.imagePath);
  if (personality) writeJobRecord(dir, record = { ...record, personality });
  return record;
}

/**
 * The writable layer, the agent's files and systemd-nspawn. Where machined
 * runs, machines boot as the original's do: systemd in the machine makes
 * `systemctl` work in jobs and tells when it is up. OCI images have no
 * systemd to boot: their machines run the stage agent as nspawn's payload,
 * under the same unit.
 */
async function startMachine(settings: Settings, dir: string, record: JobRecord, plan: JobPlan, extraBinds: readonly Bind[],
  update: RecordUpdate): Promise<JobRecord> {
  const { host, image } = plan;
  const { pod } = record;
  const stageSetup = image.kind === 'oci' ? await ociStageSetup(settings, image.meta) : defaultStageSetup;
  const storageArgs = await plan.backend.prepare(record.imagePath, dir, { privateUsers: settings.privateUsers });
  const boot = host.registers && image.kind === 'local';
  createAgentFiles(dir, boot, stageSetup);
  if (boot) createBootFiles(dir);
  const nspawnArgs = buildNspawnArgs({
    machine: record.machine,
    storageArgs,
    boot,
    // A pod's network is pasta's to set up: the machine's networkd stays masked, as on the host's network.
    payload: boot ? [...agentPayload(boot), ...bootArguments(pod ? 'host' : settings.network)] : agentPayload(boot),
    register: host.registers,
    binds: [...buildShares(settings, plan.runnerBinary), ...agentBinds(dir, boot, settings.privateUsers), ...(boot ? bootBinds(dir) : []),
      ...extraBinds],
    systemdVersion: await systemdVersion(),
    network: settings.network,
    networkNamespace: pod?.netns,
    privileged: settings.privileged,
    personality: record.personality,
  });
  return host.start({
    nspawnArgs,
    jobDir: dir,
    imagePath: record.imagePath,
    boot,
    readyTimeoutMs: settings.readyTimeoutSeconds * 1000,
    limits: settings.limits,
    slice: record.slice,
    nspawnEnv: privilegedEnv(settings.privileged),
    allDevices: settings.privileged,
    onSpawned: (spawned) => update((latest) => ({ ...latest, ...machineFields(spawned) })),
  }, record);
}

/** The image's Env and WorkingDir for every stage; the image is marked used for gc. */
async function ociStageSetup(settings: Settings, meta: PulledImageMeta): Promise<StageSetup> {
  const [{ stageEnvFor, stageWorkdirFor }, { touchImage }] = await Promise.all([import('../oci/image-config.mts'), import('../oci/store.mts')]);
  touchImage(settings, meta.key);
  return { env: stageEnvFor(meta.config.env), workdir: stageWorkdirFor(meta.config.workingDir) };
}
