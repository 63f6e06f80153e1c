// Registry credentials, found the way gitlab-runner's Docker executor finds
// them: the job's DOCKER_AUTH_CONFIG variable first, then the runner host's
// credentials file. Both are Docker's config.json format:
//   {"auths": {"registry.example.com:5000": {"auth": "base64(user:password)"}}}
// A credential is never logged. skopeo gets it through a temporary auth file
// with only that registry's entry, 0600 in a directory only root can enter,
// removed when the pull is over (pull.mts); never through argv, which every
// user can read in /proc.
import { closeSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import { JobError, SystemError } from '../errors.mts';
import { log, writeAll } from '../log.mts';
import { dockerHub } from './reference.mts';

export interface RegistryCredential {
  registry: string;
  /** base64 of "user:password", as config.json's "auth". */
  auth: string;
  /** Where it came from, for messages: DOCKER_AUTH_CONFIG or the file's path. */
  origin: string;
}

/** Docker Hub's many names, all one registry. */
const dockerHubAliases = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** A key of "auths" as a registry host[:port]: Docker writes "https://index.docker.io/v1/" and the like. */
export function registryOfKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//, '').split('/')[0]!;
  return dockerHubAliases.has(host) ? dockerHub : host;
}

/**
 * The "auths" of a config.json document, keyed by registry. Entries with
 * "username" and "password" count like "auth"; anything unusable is skipped
 * with a warning that names the registry, never the secret.
 */
export function parseDockerConfig(text: string, origin: string, fail: (message: string) => Error): Map<string, string> {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw fail(`${origin} is not valid JSON`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw fail(`${origin} is not a JSON object`);
  const { auths, credsStore, credHelpers } = document as { auths?: unknown; credsStore?: unknown; credHelpers?: unknown };
  if (credsStore !== undefined || credHelpers !== undefined) log.warn(`${origin}: credsStore and credHelpers are not supported; only "auths" is read`);
  const found = new Map<string, string>();
  if (auths === undefined) return found;
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) throw fail(`${origin}: "auths" is not a JSON object`);
  for (const [key, entry] of Object.entries(auths)) {
    const registry = registryOfKey(key);
    const { auth, username, password } = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    if (typeof auth === 'string' && isUserPassword(auth)) found.set(registry, auth);
    else if (typeof username === 'string' && typeof password === 'string') found.set(registry, Buffer.from(`${username}:${password}`).toString('base64'));
    else log.warn(`${origin}: the entry for ${registry} has no usable "auth" (base64 of user:password): ignored`);
  }
  return found;
}

function isUserPassword(auth: string): boolean {
  return /^[A-Za-z0-9+/]+={0,2}$/.test(auth) && Buffer.from(auth, 'base64').toString().includes(':');
}

export interface CredentialSources {
  /** The job's DOCKER_AUTH_CONFIG, if it has one. */
  jobAuthConfig: string | undefined;
  /** The host's credentials file (settings.oci.credentialsFile). */
  credentialsFile: string;
}

/** The credential for registry: the job's first, then the host's; undefined pulls anonymously. */
export function findCredential(registry: string, sources: CredentialSources): RegistryCredential | undefined {
  if (sources.jobAuthConfig) {
    const auths = parseDockerConfig(sources.jobAuthConfig, 'the job\'s DOCKER_AUTH_CONFIG', (message) =>
      new JobError(message, 'set DOCKER_AUTH_CONFIG to Docker\'s config.json content: {"auths": {"REGISTRY": {"auth": "..."}}}'));
    const auth = auths.get(registry);
    if (auth) return { registry, auth, origin: 'DOCKER_AUTH_CONFIG' };
  }
  if (existsSync(sources.credentialsFile)) {
    let text: string;
    try {
      text = readFileSync(sources.credentialsFile, 'utf8');
    } catch (error) {
      throw new SystemError(`cannot read the credentials file ${sources.credentialsFile}: ${(error as NodeJS.ErrnoException).code}`);
    }
    const auths = parseDockerConfig(text, sources.credentialsFile, (message) => new SystemError(message, 'fix oci.credentials_file'));
    const auth = auths.get(registry);
    if (auth) return { registry, auth, origin: sources.credentialsFile };
  }
  return undefined;
}

/** What must never appear in a message: the auth string, the password and "user:password". */
export function secretsOf(credential: RegistryCredential | undefined): string[] {
  if (!credential) return [];
  const decoded = Buffer.from(credential.auth, 'base64').toString();
  const password = decoded.slice(decoded.indexOf(':') + 1);
  return [credential.auth, decoded, password].filter((secret) => secret.length >= 3);
}

/** text with every secret replaced, for error messages built from a tool's output. */
export function redact(text: string, secrets: readonly string[]): string {
  return secrets.reduce((result, secret) => result.replaceAll(secret, '[MASKED]'), text);
}

/**
 * Writes an auth file holding only this credential, mode 0600, created
 * exclusively (nothing there may be a symlink planted by someone else).
 * The caller removes it when the pull is over.
 */
export function writeAuthFile(path: string, credential: RegistryCredential): string {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeAll(fd, `${JSON.stringify({ auths: { [credential.registry]: { auth: credential.auth } } })}\n`);
  } finally {
    closeSync(fd);
  }
  return path;
}
