// skopeo and umoci command lines (pure builders, tested as tables) and what
// their failures mean for a job. Every value that lands in argv is validated
// first (reference.mts) or is a path we made, and positionals follow `--`.
import { JobError, SystemError, type RunnerError } from '../errors.mts';
import { redact } from './auth.mts';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface RegistryAccess {
  /** Plain http, or https without certificate checks (oci.insecure_registries). */
  insecure: boolean;
  /** A temporary auth file with this registry's credential; undefined pulls anonymously. */
  authFile: string | undefined;
  /** Another platform than the host's, from the job's image:docker:platform. */
  platform?: Platform;
  timeoutSeconds: number;
}

/** skopeo's global options: a bound on the whole command, and the platform to pick from a manifest list. */
function globalArgs(access: RegistryAccess): string[] {
  const { platform } = access;
  return [
    'skopeo',
    `--command-timeout=${access.timeoutSeconds}s`,
    ...(platform ? [`--override-os=${platform.os}`, `--override-arch=${platform.architecture}`] : []),
    ...(platform?.variant ? [`--override-variant=${platform.variant}`] : []),
  ];
}

/**
 * Credentials only from the auth file we wrote, or none at all: skopeo would
 * otherwise also read root's own files ($XDG_RUNTIME_DIR/containers/auth.json,
 * ~/.docker/config.json), whatever the job is allowed to use.
 */
function credentialArgs(prefix: '' | 'src-' | 'dest-', authFile: string | undefined): string[] {
  return authFile ? [`--${prefix}authfile=${authFile}`] : [`--${prefix}no-creds`];
}

/** The raw manifest (or manifest list) a reference names: its sha256 is the image's digest. */
export function buildInspectArgs(transport: string, access: RegistryAccess): string[] {
  return [...globalArgs(access), 'inspect', '--raw', `--tls-verify=${!access.insecure}`, ...credentialArgs('', access.authFile), '--', transport];
}

/** Copies an image from a registry into an OCI layout directory, under a name of ours. */
export function buildPullArgs(transport: string, layout: string, name: string, access: RegistryAccess): string[] {
  return [...globalArgs(access), 'copy', '--quiet', `--src-tls-verify=${!access.insecure}`, ...credentialArgs('src-', access.authFile),
    '--', transport, `oci:${layout}:${name}`];
}

/** Copies an image from an OCI layout to a registry, writing the manifest digest it got there. */
export function buildPushArgs(layout: string, name: string, transport: string, digestFile: string, access: RegistryAccess): string[] {
  return [...globalArgs(access), 'copy', '--quiet', `--dest-tls-verify=${!access.insecure}`, ...credentialArgs('dest-', access.authFile),
    `--digestfile=${digestFile}`, '--', `oci:${layout}:${name}`, transport];
}

/** skopeo and umoci see nothing of the job's or root's environment; their temporary files go with the pull's staging directory. */
export function toolEnv(staging: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: staging, TMPDIR: staging };
}

/** Unpacks an image of a layout into an existing empty directory: layers in order, whiteouts applied. */
export function buildUnpackArgs(layout: string, name: string, rootfs: string): string[] {
  return ['umoci', 'raw', 'unpack', `--image=${layout}:${name}`, '--', rootfs];
}

/** skopeo's own error line: `time=... level=fatal msg="..."`, unquoted; else its last lines. */
export function skopeoMessage(stderr: string): string {
  const fatal = /level=fatal msg="((?:[^"\\]|\\.)*)"/.exec(stderr);
  const text = fatal ? fatal[1]!.replace(/\\(.)/g, '$1') : stderr.trim().split('\n').slice(-2).join(' / ');
  // skopeo wraps most failures in this, which reads as if the name were wrong.
  return text.replace(/^Error parsing image name "[^"]*": /, '') || 'no message';
}

export type RegistryFailure = 'not-found' | 'unauthorized' | 'unreachable' | 'insecure' | 'digest' | 'other';

export function classifyRegistryFailure(message: string): RegistryFailure {
  if (/Digest did not match|digest mismatch|does not match digest/i.test(message)) return 'digest';
  if (/manifest unknown|name unknown|repository name not known|MANIFEST_UNKNOWN|NAME_UNKNOWN|not found/i.test(message)) return 'not-found';
  if (/unauthorized|authentication required|denied|invalid username|incorrect username|403 Forbidden/i.test(message)) return 'unauthorized';
  if (/server gave HTTP response to HTTPS client|x509:|certificate/i.test(message)) return 'insecure';
  if (/connection refused|no such host|i\/o timeout|network is unreachable|no route to host|TLS handshake timeout|deadline exceeded|connection reset|server misbehaving|EOF/i.test(message)) {
    return 'unreachable';
  }
  return 'other';
}

/**
 * The error for a failed registry command: the job's fault (no retry) when
 * the image or its access is wrong, the host's (retried) when the registry
 * cannot be reached or sends bad data. Secrets are masked in the message.
 */
export function registryError(what: string, stderr: string, secrets: readonly string[], registry: string): RunnerError {
  const message = redact(skopeoMessage(stderr), secrets);
  switch (classifyRegistryFailure(message)) {
    case 'not-found': return new JobError(`${what}: no such image: ${message}`, 'check the repository and tag of image:');
    case 'unauthorized': return new JobError(`${what}: access refused by ${registry}: ${message}`,
      'check the credentials in DOCKER_AUTH_CONFIG or the runner\'s credentials file');
    case 'digest': return new SystemError(`${what}: refused: the registry sent data that does not match its digest: ${message}`,
      'nothing was kept; the registry or something between us and it is corrupt');
    case 'insecure': return new SystemError(`${what}: ${message}`, `if ${registry} serves plain http, list it in oci.insecure_registries`);
    case 'unreachable': return new SystemError(`${what}: registry ${registry} unreachable: ${message}`, 'retry later; check the network');
    default: return new SystemError(`${what}: ${message}`);
  }
}
