// Service machines: one per service of a job, each from its own image, in
// the job's pod (pod.mts). Each runs what `docker run` would run: the image's
// Entrypoint and Cmd unless the job gives entrypoint: or command:, with the
// image's Env, the job's public variables and the service's variables:, in
// the image's WorkingDir as its User. Its output goes to
// <job>/services/<n>/nspawn.log, which the job log gets on a failed start or
// with CI_DEBUG_SERVICES (logs.mts).
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { JobError } from '../errors.mts';
import { resolveInside } from '../image/personality.mts';
import { machineFields, type HostMode } from '../host/host.mts';
import type { JobRecord } from '../job/record.mts';
import { log } from '../log.mts';
import { buildNspawnArgs, privilegedEnv, systemdVersion, type Bind } from '../nspawn.mts';
import type { ResolvedImage } from '../oci/resolve.mts';
import type { ImageConfig } from '../oci/store.mts';
import type { Settings } from '../settings.mts';
import type { StorageBackend } from '../storage/backend.mts';
import { podBinds, type PodRecord } from './pod.mts';
import type { JobServices, ServiceSpec } from './spec.mts';

/** A service in the job record: what cleanup, status and the port wait need. */
export interface ServiceRecord {
  /** The image as the job wrote it. */
  image: string;
  hostNames: string[];
  machine: string;
  dir: string;
  imagePath: string;
  oci?: { key: string; digest: string };
  /** TCP ports prepare waits for: the image's exposed ones and the job's ports:. */
  ports: number[];
  nspawnPid?: number;
  nspawnStartTime?: string;
  leaderPid?: number;
  leaderStartTime?: string;
  unit?: string;
  /** Why its machine did not start, when it did not. */
  failed?: string;
}

/** A service with its image found and its command decided, before anything runs. */
export interface PlannedService {
  spec: ServiceSpec;
  image: ResolvedImage;
  argv: string[];
  env: string[];
  workdir: string | undefined;
  user: string | undefined;
  ports: number[];
}

/**
 * What the machine runs, as `docker run` decides it: a job's entrypoint:
 * replaces the image's Entrypoint and drops its Cmd; a job's command:
 * replaces the Cmd only.
 */
export function serviceArgv(spec: Pick<ServiceSpec, 'entrypoint' | 'command'>, config: Pick<ImageConfig, 'entrypoint' | 'cmd'> | undefined): string[] {
  if (spec.entrypoint) return [...spec.entrypoint, ...(spec.command ?? [])];
  return [...(config?.entrypoint ?? []), ...(spec.command ?? config?.cmd ?? [])];
}

const defaultPath = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The service's environment: a default PATH, the image's Env, the job's public variables, the service's variables:. */
export function serviceEnv(imageEnv: readonly string[], jobVariables: ReadonlyArray<[string, string]>, variables: ReadonlyArray<[string, string]>): string[] {
  const entries = new Map<string, string>();
  for (const entry of [defaultPath, ...imageEnv, ...[...jobVariables, ...variables].map(([key, value]) => `${key}=${value}`)]) {
    const equals = entry.indexOf('=');
    if (equals > 0 && !entry.includes('\0')) entries.set(entry.slice(0, equals), entry.slice(equals + 1));
  }
  return [...entries].map(([name, value]) => `${name}=${value}`);
}

/** Docker's User is "user[:group]"; nspawn's --user takes a user, whose groups come from the image. */
function userOf(config: ImageConfig | undefined): string | undefined {
  const user = config?.user.split(':')[0];
  return user && user !== 'root' && user !== '0' && /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(user) ? user : undefined;
}

function workdirOf(config: ImageConfig | undefined): string | undefined {
  const dir = config?.workingDir;
  return dir && dir.startsWith('/') && dir !== '/' && !/[\0\n]/.test(dir) ? dir : undefined;
}

function isDirectoryInside(tree: string, path: string): boolean {
  const resolved = resolveInside(tree, path);
  return resolved !== undefined && statSync(resolved, { throwIfNoEntry: false })?.isDirectory() === true;
}

/**
 * Docker makes a WorkingDir the image lacks, owned by root; nspawn's --chdir
 * only enters one. nspawn makes a bind's mount point, as root, before the
 * service drops to its User: an empty directory of the service's own is
 * bound there, and goes with the job.
 */
export function missingWorkdir(tree: string, workdir: string | undefined): boolean {
  return workdir !== undefined && !isDirectoryInside(tree, workdir);
}

/**
 * Finds (and pulls) every service's image, under allowed_services as
 * allowed_images is for job images, and decides what each runs. A service
 * the runner cannot run is the job's fault: a build failure, before any
 * machine starts.
 */
export async function planServices(settings: Settings, services: JobServices, jobAuthConfig: string | undefined): Promise<PlannedService[]> {
  // nspawn enters a machine's user namespace before it joins the pod's
  // network namespace, which the host's user namespace owns: EPERM.
  if (settings.privateUsers) {
    throw new JobError(`services (${services.services.map((service) => service.image).join(', ')}) cannot run on this runner: it sets private_users`,
      'run jobs with services: on a runner without private_users');
  }
  const { resolveJobImage } = await import('../oci/resolve.mts');
  const serviceSettings = { ...settings, allowedImages: settings.allowedServices };
  return Promise.all(services.services.map(async (spec) => {
    let image: ResolvedImage;
    try {
      image = await resolveJobImage(serviceSettings, {
        written: spec.image,
        job: { name: spec.image, pullPolicies: spec.pullPolicies, platform: undefined, user: undefined, entrypoint: [] },
        jobAuthConfig,
        forService: true,
      });
    } catch (error) {
      if (error instanceof JobError) throw new JobError(`service ${spec.image}: ${error.message}`, error.hint);
      throw error;
    }
    const config = image.kind === 'oci' ? image.meta.config : undefined;
    const argv = serviceArgv(spec, config);
    if (!argv.length) {
      throw new JobError(`service ${spec.image}: it has nothing to run`, 'its image has no Entrypoint or Cmd: give the service a command:');
    }
    return {
      spec,
      image,
      argv,
      workdir: workdirOf(config),
      env: serviceEnv(config?.env ?? [], services.jobVariables, spec.variables),
      user: userOf(config),
      ports: [...new Set([...(config?.exposedTcpPorts ?? []), ...spec.ports])],
    };
  }));
}

/** Machine names are host names of at most 64 characters: a long job id is hashed. */
export function serviceMachineName(jobMachine: string, index: number): string {
  const name = `${jobMachine}-s${index}`;
  if (name.length <= 64) return name;
  // node:crypto costs ~10 ms to load under Bun: only this rare case pays it.
  const hash = process.getBuiltinModule('node:crypto').createHash('sha256').update(jobMachine).digest('hex');
  return `svc-${hash.slice(0, 16)}-s${index}`;
}

export function servicesDir(jobDir: string): string {
  return `${jobDir}/services`;
}

/** Service directories present under a job directory, whatever its record says. */
export function listServiceDirs(jobDir: string): string[] {
  try {
    return readdirSync(servicesDir(jobDir)).filter((entry) => /^\d+$/.test(entry)).map((entry) => `${servicesDir(jobDir)}/${entry}`);
  } catch {
    return [];
  }
}

export function serviceRecordOf(planned: PlannedService, jobRecord: JobRecord, jobDir: string, index: number): ServiceRecord {
  const { image } = planned;
  return {
    image: planned.spec.image,
    hostNames: planned.spec.hostNames,
    machine: serviceMachineName(jobRecord.machine, index),
    dir: `${servicesDir(jobDir)}/${index}`,
    imagePath: image.path,
    ...(image.kind === 'oci' ? { oci: { key: image.meta.key, digest: image.meta.digest } } : {}),
    ports: planned.ports,
  };
}

export interface ServiceStart {
  settings: Settings;
  host: HostMode;
  backend: StorageBackend;
}

export interface ServiceContext extends ServiceStart {
  pod: PodRecord;
  jobRecord: JobRecord;
  /** Keeps the job record current as machines appear, for cleanup. */
  update(service: ServiceRecord): void;
}

/**
 * Starts one service machine. A machine that does not start is reported,
 * not thrown: as with the Docker executor, the job goes on without it.
 */
export async function startService(start: ServiceContext, planned: PlannedService, service: ServiceRecord): Promise<ServiceRecord> {
  const { settings, host, pod } = start;
  mkdirSync(service.dir, { recursive: true });
  const asJob: JobRecord = { ...start.jobRecord, machine: service.machine, image: service.image, imagePath: service.imagePath };
  try {
    const storageArgs = await start.backend.prepare(service.imagePath, service.dir, { privateUsers: settings.privateUsers });
    const nspawnArgs = buildNspawnArgs({
      machine: service.machine,
      storageArgs,
      boot: false,
      payload: planned.argv,
      register: host.registers,
      binds: [...podBinds(pod), ...(planned.workdir && missingWorkdir(service.imagePath, planned.workdir) ? [workdirBind(service, planned.workdir)] : [])],
      systemdVersion: await systemdVersion(),
      network: settings.network,
      networkNamespace: pod.netns,
      payloadEnv: planned.env,
      workdir: planned.workdir,
      user: planned.user,
      privileged: settings.privileged,
    });
    const started = await host.start({
      nspawnArgs,
      jobDir: service.dir,
      imagePath: service.imagePath,
      boot: false,
      anyPayload: true,
      outputFile: serviceLogPath(service.dir),
      readyTimeoutMs: settings.readyTimeoutSeconds * 1000,
      limits: settings.limits,
      slice: start.jobRecord.slice,
      nspawnEnv: privilegedEnv(settings.privileged),
      allDevices: settings.privileged,
      onSpawned: (spawned) => start.update({ ...service, ...machineFields(spawned) }),
    }, asJob);
    return { ...service, ...machineFields(started) };
  } catch (error) {
    const failed = (error as Error).message;
    log.warn(`service ${service.image} (${service.hostNames[0] ?? service.machine}) did not start: ${failed}`);
    return { ...service, failed };
  }
}

function workdirBind(service: ServiceRecord, workdir: string): Bind {
  mkdirSync(`${service.dir}/workdir`, { mode: 0o755 });
  return { source: `${service.dir}/workdir`, target: workdir, readOnly: false };
}

/** The job record as host modes read it, for a service's machine: stop it, or ask whether it runs. */
export function serviceAsMachine(record: JobRecord, service: ServiceRecord): JobRecord {
  const { nspawnPid, nspawnStartTime, leaderPid, leaderStartTime, unit } = service;
  return { ...record, machine: service.machine, image: service.image, nspawnPid, nspawnStartTime, leaderPid, leaderStartTime, unit };
}

/** Where a service machine's output goes (direct hosts: nspawn's log; systemd hosts: the unit's output). */
export function serviceLogPath(serviceDir: string): string {
  return `${serviceDir}/nspawn.log`;
}
