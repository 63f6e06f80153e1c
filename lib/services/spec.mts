// A job's services: what gitlab-runner tells a custom executor about them,
// and the host names a job reaches each one by. JOB_RESPONSE_FILE has the
// full objects (ports, variables, pull policy); CUSTOM_ENV_CI_JOB_SERVICES
// only name, alias, entrypoint and command (executors/custom/custom.go).
import { readJobResponse } from '../contract.mts';
import { JobError } from '../errors.mts';

export interface ServiceSpec {
  /** The image, as the job wrote it. */
  image: string;
  /** The job's aliases, then the names derived from the image (serviceHostNames). */
  hostNames: string[];
  /** The job's entrypoint:/command:, undefined when it gave none (the image's then apply). */
  entrypoint: string[] | undefined;
  command: string[] | undefined;
  /** TCP ports the job says the service listens on (services:ports). */
  ports: number[];
  /** The service's variables:, over the job's. */
  variables: Array<[string, string]>;
  pullPolicies: string[];
}

export interface JobServices {
  services: ServiceSpec[];
  /** The job's public variables, which services get as the Docker executor gives them (PublicOrInternal). */
  jobVariables: Array<[string, string]>;
  /** CI_DEBUG_SERVICES: stream each service's output into the job log. */
  debug: boolean;
}

const strings = (value: unknown): string[] | undefined =>
  (Array.isArray(value) && value.length > 0 ? value.filter((item): item is string => typeof item === 'string') : undefined);

function variablePairs(value: unknown, publicOnly: boolean): Array<[string, string]> {
  if (!Array.isArray(value)) return [];
  return value.flatMap((item) => {
    const { key, value: text, public: isPublic, file } = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    if (typeof key !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || typeof text !== 'string' || text.includes('\0')) return [];
    if (publicOnly && (isPublic !== true || file === true)) return [];
    return [[key, text] as [string, string]];
  });
}

function portsOf(value: unknown): number[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((item) => {
    const { number, protocol } = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    const port = Number(number);
    const tcp = protocol === undefined || protocol === '' || protocol === 'tcp' || protocol === 'http' || protocol === 'https';
    return tcp && Number.isInteger(port) && port > 0 && port < 65536 ? [port] : [];
  });
}

/** gitlab-runner's Image.Aliases(): the alias field split at commas and spaces. */
export function aliasesOf(alias: unknown): string[] {
  return typeof alias === 'string' ? alias.split(/[,\s]+/).filter(Boolean) : [];
}

/**
 * The names the Docker executor gives a service from its image
 * (helpers/container/services): the image without tag, digest and registry
 * port, with "/" as "__", and again with "/" as "-".
 * `postgres:16` -> postgres; `registry.example.com/group/tool:1` ->
 * registry.example.com__group__tool, registry.example.com-group-tool.
 */
export function derivedHostNames(image: string): string[] {
  const withoutDigest = image.replace(/@sha256:[a-f0-9]{64}$/, '');
  const lastSlash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  const withoutTag = colon > lastSlash ? withoutDigest.slice(0, colon) : withoutDigest;
  const firstSlash = withoutTag.indexOf('/');
  const registry = firstSlash < 0 ? withoutTag : withoutTag.slice(0, firstSlash);
  const path = firstSlash < 0 ? '' : withoutTag.slice(firstSlash);
  const service = registry.replace(/:[0-9]+$/, '') + path;
  return [...new Set([service.replaceAll('/', '__'), service.replaceAll('/', '-')])].filter(isHostName);
}

/** A name /etc/hosts can carry: letters, digits, ".", "-" and "_", as Docker's link names. */
export function isHostName(name: string): boolean {
  return /^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$/.test(name);
}

/** One service as a runner takes it; the names already expanded, as gitlab-runner expands them before prepare. */
export interface ServiceFields {
  image: string;
  /** As written: one or more names, comma- or space-separated. */
  alias?: string;
  entrypoint?: readonly string[];
  command?: readonly string[];
  ports?: readonly number[];
  variables?: ReadonlyArray<[string, string]>;
  pullPolicies?: readonly string[];
}

/** A ServiceSpec: aliases split and checked, the names derived from the image added. An empty list is none (the image's). */
export function serviceSpecOf(fields: ServiceFields): ServiceSpec {
  const aliases = aliasesOf(fields.alias);
  const bad = aliases.find((alias) => !isHostName(alias));
  if (bad !== undefined) throw new JobError(`service ${fields.image}: alias ${JSON.stringify(bad)} is not a host name`, 'use letters, digits, ".", "-" and "_"');
  return {
    image: fields.image,
    hostNames: [...new Set([...aliases, ...derivedHostNames(fields.image)])],
    entrypoint: fields.entrypoint?.length ? [...fields.entrypoint] : undefined,
    command: fields.command?.length ? [...fields.command] : undefined,
    ports: [...fields.ports ?? []],
    variables: [...fields.variables ?? []],
    pullPolicies: [...fields.pullPolicies ?? []],
  };
}

/** CI_DEBUG_SERVICES as gitlab-runner reads it (strconv.ParseBool, common/build_settings.go). */
export function isDebugServices(value: string | undefined): boolean {
  return value !== undefined && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value);
}

function serviceOf(value: unknown): ServiceSpec | undefined {
  const item = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if (typeof item.name !== 'string' || item.name === '') return undefined;
  return serviceSpecOf({
    image: item.name,
    alias: typeof item.alias === 'string' ? item.alias : undefined,
    entrypoint: strings(item.entrypoint),
    command: strings(item.command),
    ports: portsOf(item.ports),
    variables: variablePairs(item.variables, false),
    pullPolicies: strings(item.pull_policy),
  });
}

function listOf(json: string | undefined): unknown[] {
  try {
    const value = json ? JSON.parse(json) as unknown : [];
    return Array.isArray(value) ? value : [];
  } catch {
    throw new JobError('CI_JOB_SERVICES is not a JSON list');
  }
}

/**
 * The job's services: from the job as GitLab sent it (JOB_RESPONSE_FILE,
 * which a CI user cannot override), else from CUSTOM_ENV_CI_JOB_SERVICES.
 */
export function jobServicesFromEnv(env: NodeJS.ProcessEnv = process.env): JobServices {
  const job = readJobResponse(env);
  const listed = job && Array.isArray(job.services) ? job.services : listOf(env.CUSTOM_ENV_CI_JOB_SERVICES);
  const raw = new Set(rawKeys(job?.variables));
  const jobVariables = expandOnce(job ? variablePairs(job.variables, true) : [], [], raw);
  const debugValue = jobVariables.find(([key]) => key === 'CI_DEBUG_SERVICES')?.[1] ?? env.CUSTOM_ENV_CI_DEBUG_SERVICES;
  return {
    services: listed.flatMap((item) => serviceOf(item) ?? []).map((service) => ({ ...service, variables: expandOnce(service.variables, jobVariables, raw) })),
    jobVariables,
    debug: isDebugServices(debugValue),
  };
}

function rawKeys(variables: unknown): string[] {
  return Array.isArray(variables)
    ? variables.flatMap((item) => (item?.raw === true && typeof item.key === 'string' ? [item.key as string] : []))
    : [];
}

/**
 * The Docker executor's JobVariables.Expand() for a service's environment:
 * each value but a raw one, once, with $NAME and ${NAME} from the job's
 * variables and the pairs themselves (later wins), $$ for a literal $, an
 * unknown name empty. exec expands its variables itself, before this.
 */
export function expandOnce(pairs: ReadonlyArray<[string, string]>, context: ReadonlyArray<[string, string]>, raw: ReadonlySet<string>): Array<[string, string]> {
  const values = new Map([...context, ...pairs]);
  return pairs.map(([key, value]) => [key, raw.has(key) ? value
    : value.replace(/\$(?:\$|\{(\w+)\}|(\w+))/g, (whole, braced?: string, plain?: string) => (whole === '$$' ? '$' : values.get((braced ?? plain)!) ?? ''))]);
}
