// What a job's `image:` means, in this order (README, "OCI images"):
//   1. a local image of that exact name (`bookworm`);
//   2. the original nspawn-runner's rule, the name after the last colon
//      (`debian:bookworm` is the local image bookworm), when that image exists;
//   3. an OCI image from a registry, pulled when oci.enabled is set.
// `docker://` before the reference skips 1 and 2, and a reference with a
// digest always means the OCI image: a digest pins content that no local
// image has. With OCI off, everything is as before: rule 2, or "not found".
import { existsSync, realpathSync, statSync } from 'node:fs';
import type { JobImage } from '../contract.mts';
import { JobError } from '../errors.mts';
import {
  checkImageAllowed, globToRegExp, imageNameFromReference, imagePath, imageStoreDir, isImageName, listImageNames, resolveImage,
} from '../image/resolve.mts';
import { log } from '../log.mts';
import { pullPolicies, type PullPolicy, type Settings } from '../settings.mts';
import { parsePlatform } from './platform.mts';
import { obtainImage } from './pull.mts';
import { formatReference, hasOciPrefix, parseOciReference, registryMatches, type OciReference } from './reference.mts';
import type { PulledImageMeta } from './store.mts';

export type ResolvedImage =
  | { kind: 'local'; name: string; path: string }
  | { kind: 'oci'; name: string; path: string; meta: PulledImageMeta };

export interface ImageRequest {
  /** What the job wrote (or the default image). */
  written: string;
  /** The job's image: object, when the image is the job's own. */
  job?: JobImage;
  /** The job's DOCKER_AUTH_CONFIG. */
  jobAuthConfig?: string;
  /** A service's image: it runs its own command, so it needs none of the stage agent's tools. */
  forService?: boolean;
}

function isLocalImage(settings: Settings, name: string): boolean {
  if (!isImageName(name)) return false;
  try {
    return statSync(imagePath(settings, name)).isDirectory();
  } catch {
    // A plain image moving into the store is missing for an instant (resolveImage).
    return existsSync(imageStoreDir(settings, name));
  }
}

function local(settings: Settings, name: string): ResolvedImage {
  checkImageAllowed(settings, name);
  return { kind: 'local', name, path: resolveImage(settings, name) };
}

/** The local image a reference names by rules 1 and 2, if there is one. */
function localCandidate(settings: Settings, written: string): string | undefined {
  if (isLocalImage(settings, written)) return written;
  if (written.includes('@')) return undefined;
  let name: string;
  try {
    name = imageNameFromReference(written);
  } catch {
    return undefined;
  }
  return isLocalImage(settings, name) ? name : undefined;
}

export async function resolveJobImage(settings: Settings, request: ImageRequest): Promise<ResolvedImage> {
  const { written } = request;
  if (!settings.oci.enabled) {
    if (hasOciPrefix(written)) throw new JobError(`image "${written}": OCI images are not enabled on this runner`, 'the runner\'s admin can set oci.enabled: true');
    return local(settings, imageNameFromReference(written));
  }
  const candidate = hasOciPrefix(written) ? undefined : localCandidate(settings, written);
  if (candidate) return local(settings, candidate);
  const reference = parseOciReference(written);
  const name = formatReference(reference);
  checkOciAllowed(settings, written, reference);
  const platform = parsePlatform(request.job?.platform);
  noteIgnoredOptions(request.job);
  let pulled;
  try {
    pulled = await obtainImage(settings, {
      reference,
      policies: choosePullPolicies(settings, request.job?.pullPolicies ?? []),
      platform,
      credentials: { jobAuthConfig: request.jobAuthConfig, credentialsFile: settings.oci.credentialsFile },
    });
  } catch (error) {
    // A bare name may have meant a local image: say which there are.
    if (error instanceof JobError && !written.includes('/') && !hasOciPrefix(written)) {
      const available = listImageNames(settings);
      throw new JobError(`${error.message}; nor is "${written}" a local image (available: ${available.length ? available.join(', ') : 'none'})`, error.hint);
    }
    throw error;
  }
  const { meta } = pulled;
  if (meta.missingTools.length && !request.forService) {
    throw new JobError(`image ${name} cannot run jobs here: it has no ${meta.missingTools.join(', ')}`,
      'nspawn-runner\'s stage agent runs /bin/sh with env, setsid and mkfifo (busybox, or coreutils and util-linux, provide them)');
  }
  return { kind: 'oci', name, path: realpathSync(pulled.tree), meta };
}

/** allowed_images applies to the reference as written and as canonical; allowed_registries to its registry. */
export function checkOciAllowed(settings: Settings, written: string, reference: OciReference): void {
  const name = formatReference(reference);
  const allowedImages = settings.allowedImages;
  const plain = hasOciPrefix(written) ? written.slice('docker://'.length) : written;
  if (allowedImages && !allowedImages.some((glob) => globToRegExp(glob).test(plain) || globToRegExp(glob).test(name))) {
    throw new JobError(`image "${plain}" is not allowed on this runner; allowed: ${allowedImages.join(', ')}`);
  }
  const registries = settings.oci.allowedRegistries;
  if (registries && !registryMatches(reference.registry, registries)) {
    throw new JobError(`image "${plain}": registry ${reference.registry} is not allowed on this runner; allowed: ${registries.join(', ')}`);
  }
}

/**
 * The policies to try: the job's image:pull_policy, else the runner's
 * pull_policy. Each one the job asks for must be in allowed_pull_policies
 * (by default the runner's pull_policy), as with gitlab-runner.
 */
export function choosePullPolicies(settings: Settings, asked: readonly string[]): PullPolicy[] {
  if (asked.length === 0) return [...settings.oci.pullPolicy];
  const allowed = settings.oci.allowedPullPolicies ?? settings.oci.pullPolicy;
  for (const policy of asked) {
    if (!(pullPolicies as readonly string[]).includes(policy)) {
      throw new JobError(`unknown pull_policy ${JSON.stringify(policy)}: use ${pullPolicies.join(', ')}`);
    }
    if (!(allowed as readonly string[]).includes(policy)) {
      throw new JobError(`pull_policy ${policy} is not allowed on this runner; allowed: ${allowed.join(', ')}`,
        'the runner\'s admin can add it to oci.allowed_pull_policies');
    }
  }
  return [...new Set(asked as PullPolicy[])];
}

/** Docker options that do not apply to a machine: said once in the job log, not silently dropped. */
function noteIgnoredOptions(job: JobImage | undefined): void {
  if (job?.user) log.info(`image:docker:user ${job.user} is not applied: stages run as root in the job's machine`);
  if (job && job.entrypoint.some((word) => word !== '')) {
    log.info('image:entrypoint is not run: the machine runs gitlab-runner\'s stage scripts directly');
  }
}
