// Getting a job's OCI image into the store (store.mts): skopeo copies the
// image into the shared layout, umoci unpacks it once per digest, one rename
// publishes it (unpack.mts).
//
// - A tag with no image here yet is copied at once. The digest that keys the
//   image comes from a digest request run beside the copy, not before it: on
//   a small image that request was a quarter of a cold pull (README, "OCI
//   images, measured"). Jobs pulling the same reference wait on its lock
//   (locks/ref-<hash>) and then find the image the first one published.
// - An image pulled before, under pull_policy always, costs one digest
//   request: the tag is copied again only when it names a new digest.
// - However it was copied, an image is unpacked under its digest's lock
//   (locks/<key>), once: another reference to the same digest finds it.
// - No half-made image is ever used: a pull works in a staging directory of
//   its own and renames the finished image into place. A pull killed half-way
//   leaves only its staging directory, which gc removes (owner gone).
// - Blobs go straight into the shared layout (the staging layout's blobs/ is
//   a symlink to it): skopeo verifies each blob's digest and renames it into
//   place only when it matches, and skips blobs that are there already, so a
//   base layer shared by two images is fetched and stored once.
// - gc deletes blobs only while no pull runs: a pull registers (its staging
//   directory) before it checks gc's lock, gc takes its lock before it looks
//   for pulls, so one of them always sees the other (gc.mts).
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomHex, sha256Hex } from '../crypto.mts';
import { JobError, SystemError } from '../errors.mts';
import { run, type RunResult } from '../exec.mts';
import { tryLock, type Lock } from '../lock.mts';
import { log } from '../log.mts';
import { isOwnerRunning, ownerMark, sleep } from '../proc.mts';
import type { PullPolicy, Settings } from '../settings.mts';
import { findCredential, secretsOf, writeAuthFile, type CredentialSources, type RegistryCredential } from './auth.mts';
import { formatReference, registryMatches, transportReference, type OciReference } from './reference.mts';
import { buildInspectArgs, buildPullArgs, registryError, toolEnv, type Platform, type RegistryAccess } from './skopeo.mts';
import { ensureLayout, findPulledImage, imageKey, ociDir, platformName, readRef, refId, writeRef, type PulledImage } from './store.mts';

export interface ObtainRequest {
  reference: OciReference;
  /** Tried in order; the first that yields an image wins (gitlab-runner's fallback). */
  policies: readonly PullPolicy[];
  platform: Platform | undefined;
  credentials: CredentialSources;
}

/** What a pull needs beyond the request: a private directory, the credential in a file there, the registry's answer. */
interface Session {
  staging(): string;
  access(): RegistryAccess;
  secrets(): string[];
  /** The raw manifest the reference names now (skopeo inspect --raw), asked for once per job. */
  askManifest(): Promise<RunResult>;
  dispose(): Promise<void>;
}

export function gcLockPath(settings: Settings): string {
  return `${ociDir(settings)}/gc.lock`;
}

export function stagingRoot(settings: Settings): string {
  return `${ociDir(settings)}/staging`;
}

function openSession(settings: Settings, request: ObtainRequest): Session {
  let staging: string | undefined;
  let authFile: string | undefined;
  let credential: RegistryCredential | undefined;
  let looked = false;
  let manifest: Promise<RunResult> | undefined;
  // gitlab-runner cancels a prepare with SIGTERM to its process group: the
  // credential goes first, then the signal takes its default course. The
  // staging directory is left to gc.
  const onSignal = (name: NodeJS.Signals): void => {
    if (authFile) rmSync(authFile, { force: true });
    for (const signal of signals) process.off(signal, onSignal);
    process.kill(process.pid, name);
  };
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
  const session: Session = {
    staging() {
      if (staging) return staging;
      const dir = `${stagingRoot(settings)}/${process.pid}-${randomHex(4)}`;
      mkdirSync(dir, { mode: 0o700 });
      writeFileSync(`${dir}/.owner`, `${ownerMark()}\n`);
      for (const signal of signals) process.on(signal, onSignal);
      return (staging = dir);
    },
    access() {
      if (!looked) {
        credential = findCredential(request.reference.registry, request.credentials);
        looked = true;
        if (credential) log.verbose(`using the credential for ${credential.registry} from ${credential.origin}`);
      }
      if (credential && !authFile) authFile = writeAuthFile(`${session.staging()}/auth.json`, credential);
      return {
        insecure: registryMatches(request.reference.registry, settings.oci.insecureRegistries),
        authFile,
        platform: request.platform,
        timeoutSeconds: settings.oci.pullTimeoutSeconds,
      };
    },
    secrets: () => secretsOf(credential),
    askManifest() {
      manifest ??= run(buildInspectArgs(transportReference(request.reference), session.access()), { env: toolEnv(session.staging()) });
      return manifest;
    },
    async dispose() {
      // A job that found the image pulled by another may not have needed the answer.
      await manifest?.catch(() => undefined);
      if (authFile) rmSync(authFile, { force: true });
      for (const signal of signals) process.off(signal, onSignal);
      if (!staging) return;
      // An image that was not published: its tree may be a read-only
      // subvolume. Nothing else there is mounted or a subvolume.
      if (existsSync(`${staging}/image`)) {
        const { removeTree } = await import('../mounts.mts');
        await removeTree(`${staging}/image/tree`);
      }
      rmSync(staging, { recursive: true, force: true });
    },
  };
  return session;
}

/**
 * The job's image in the store, pulled when the pull policies say so. Errors
 * say whose fault it is (skopeo.mts): a missing image or refused access
 * fails the job, an unreachable registry or a full disk fails the runner.
 */
export async function obtainImage(settings: Settings, request: ObtainRequest): Promise<PulledImage> {
  ensureLayout(settings);
  const session = openSession(settings, request);
  try {
    let lastError: unknown;
    for (const [index, policy] of request.policies.entries()) {
      try {
        return await obtainWithPolicy(settings, request, policy, session);
      } catch (error) {
        lastError = error;
        const next = request.policies[index + 1];
        if (next) log.warn(`pull_policy ${policy} failed (${(error as Error).message}); trying ${next}`);
      }
    }
    throw lastError;
  } finally {
    await session.dispose();
  }
}

/** The image already in the store for this reference: by its digest, or by what its tag resolved to last. */
export async function findStoredImage(settings: Settings, reference: OciReference, platform: Platform | undefined): Promise<PulledImage | undefined> {
  const key = reference.digest ? imageKey(reference.digest, platform) : (await readRef(settings, reference, platform))?.key;
  return key ? findPulledImage(settings, key) : undefined;
}

async function obtainWithPolicy(settings: Settings, request: ObtainRequest, policy: PullPolicy, session: Session): Promise<PulledImage> {
  const { reference, platform } = request;
  const name = formatReference(reference);
  const stored = await findStoredImage(settings, reference, platform);
  if (stored && policy !== 'always') {
    log.verbose(`image ${name}: using ${stored.meta.digest}, pulled before (pull_policy ${policy})`);
    return stored;
  }
  if (policy === 'never') {
    throw new JobError(`image ${name} is not on this runner, and pull_policy is never`, `pull it first: nspawn-runner oci-pull ${name}`);
  }
  if (!stored && !reference.digest) return pullTag(settings, request, policy, session);
  // A digest names its image for good; "always" still asks the registry about
  // an image it has (a moved tag, revoked access), and copies only a new digest.
  const digest = stored ? await resolveDigest(reference, session) : reference.digest!;
  const key = imageKey(digest, platform);
  const image = findPulledImage(settings, key) ?? await pullDigest(settings, request, digest, session);
  if (reference.tag) await writeRef(settings, reference, platform, digest, key);
  return image;
}

/** The digest the reference names now: the sha256 of the manifest (or manifest list) the registry serves. */
async function resolveDigest(reference: OciReference, session: Session): Promise<string> {
  const result = await session.askManifest();
  if (result.code !== 0) throw registryError(`image ${formatReference(reference)}`, result.stderr, session.secrets(), reference.registry);
  const digest = await manifestDigest(result);
  if (reference.digest && digest !== reference.digest) {
    throw new SystemError(`image ${formatReference(reference)}: the registry served a manifest whose digest is ${digest}`);
  }
  return digest;
}

async function manifestDigest(inspected: RunResult): Promise<string> {
  return `sha256:${await sha256Hex(inspected.stdout)}`;
}

/** Waits for a lock held by a live process; a dead holder's lock is taken over (lock.mts). */
async function waitForLock(path: string, purpose: string, what: string, timeoutMs: number): Promise<Lock> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20, told = false; ; delay = Math.min(delay * 2, 500)) {
    const lock = tryLock(path, purpose);
    if ('release' in lock) return lock;
    if (!told) log.info(`waiting for ${lock.purpose} (pid ${lock.pid}): ${what}`);
    told = true;
    if (Date.now() > deadline) throw new SystemError(`${what}: still busy after ${Math.round(timeoutMs / 1000)} s (${lock.purpose}, pid ${lock.pid})`);
    await sleep(delay);
  }
}

function lockPull(settings: Settings, name: string, lockName: string): Promise<Lock> {
  return waitForLock(`${ociDir(settings)}/locks/${lockName}`, `pull of ${name}`, `image ${name}`, settings.oci.pullTimeoutSeconds * 1000);
}

/**
 * The staging directory, once gc is not deleting blobs. The pull registered
 * first (its staging directory), so a gc that takes its lock after this
 * looks sees the pull; only a lock already there is waited for.
 */
async function startCopy(settings: Settings, session: Session): Promise<string> {
  const staging = session.staging();
  if (existsSync(gcLockPath(settings))) {
    const lock = await waitForLock(gcLockPath(settings), 'pull', 'the image store', settings.oci.pullTimeoutSeconds * 1000);
    lock.release();
  }
  return staging;
}

/** An empty OCI layout in the staging directory whose blobs are the shared layout's. */
function newLayout(staging: string, name: string): string {
  const layout = `${staging}/${name}`;
  // A failed attempt under an earlier pull policy may have left its own (rm does not follow blobs/).
  rmSync(layout, { recursive: true, force: true });
  mkdirSync(layout, { mode: 0o700 });
  symlinkSync('../../../blobs', `${layout}/blobs`);
  return layout;
}

/** What only the second half of a pull needs, loaded while skopeo copies. */
function loadAfterCopy() {
  return Promise.all([import('./image-config.mts'), import('./unpack.mts')]);
}

/** A digest's image: copied (unless published meanwhile) and unpacked, one pull per digest at a time. */
async function pullDigest(settings: Settings, request: ObtainRequest, digest: string, session: Session): Promise<PulledImage> {
  const { reference, platform } = request;
  const name = formatReference(reference);
  const key = imageKey(digest, platform);
  const lock = await lockPull(settings, name, key);
  try {
    // Whoever held the lock may have published it meanwhile.
    const published = findPulledImage(settings, key);
    if (published) return published;
    const staging = await startCopy(settings, session);
    const afterCopy = loadAfterCopy();
    log.info(`pulling ${name} (${digest}${platform ? `, ${platformName(platform)}` : ''})`);
    const layout = newLayout(staging, 'layout');
    const copied = await run(buildPullArgs(transportReference(reference, digest), layout, 'image', session.access()), { env: toolEnv(staging) });
    if (copied.code !== 0) throw registryError(`image ${name}`, copied.stderr, session.secrets(), reference.registry);
    const [{ readLayoutImage }, { unpackAndPublish }] = await afterCopy;
    return await unpackAndPublish(settings, { name, digest, key, platform, layout, image: readLayoutImage(layout), staging, secrets: session.secrets() });
  } finally {
    lock.release();
  }
}

/**
 * A tag with no image here: one job copies it while the others wait on the
 * reference's lock; they then go on as jobs arriving now would, and find it.
 */
async function pullTag(settings: Settings, request: ObtainRequest, policy: PullPolicy, session: Session): Promise<PulledImage> {
  const { reference, platform } = request;
  // The digest request goes out first: skopeo starting up beside our locks
  // and staging costs nothing, beside the copy's own start it slows the copy.
  session.askManifest().catch(() => undefined);
  const lock = await lockPull(settings, formatReference(reference), `ref-${await refId(reference, platform)}`);
  let pulled: PulledImage | undefined;
  try {
    if (!(await findStoredImage(settings, reference, platform))) pulled = await copyTag(settings, request, session);
  } finally {
    lock.release();
  }
  return pulled ?? obtainWithPolicy(settings, request, policy, session);
}

/** Copies a tag and unpacks what it names, its digest asked for beside the copy. The caller holds the reference's lock. */
async function copyTag(settings: Settings, request: ObtainRequest, session: Session): Promise<PulledImage> {
  const { reference, platform } = request;
  const name = formatReference(reference);
  const staging = await startCopy(settings, session);
  const afterCopy = loadAfterCopy();
  log.info(`pulling ${name}${platform ? ` (${platformName(platform)})` : ''}`);
  const access = session.access();
  const env = toolEnv(staging);
  const copy = async (transport: string, layout: string): Promise<void> => {
    const result = await run(buildPullArgs(transport, layout, 'image', access), { env });
    if (result.code !== 0) throw registryError(`image ${name}`, result.stderr, session.secrets(), reference.registry);
  };
  let layout = newLayout(staging, 'layout');
  const [, inspected] = await Promise.all([copy(transportReference(reference), layout), session.askManifest()]);
  if (inspected.code !== 0) throw registryError(`image ${name}`, inspected.stderr, session.secrets(), reference.registry);
  const digest = await manifestDigest(inspected);
  const [{ isImageOf, readLayoutImage }, { unpackAndPublish }] = await afterCopy;
  let image = readLayoutImage(layout);
  if (!isImageOf(inspected.stdout, image)) {
    // A manifest list (an image for several platforms), or a tag that moved
    // between the two requests: copy what the digest names. Its blobs are
    // mostly here already, so this costs little more than its manifests.
    layout = newLayout(staging, 'pinned');
    await copy(transportReference(reference, digest), layout);
    image = readLayoutImage(layout);
  }
  const key = imageKey(digest, platform);
  const lock = await lockPull(settings, name, key);
  try {
    const pulled = findPulledImage(settings, key)
      ?? await unpackAndPublish(settings, { name, digest, key, platform, layout, image, staging, secrets: session.secrets() });
    await writeRef(settings, reference, platform, digest, key);
    return pulled;
  } finally {
    lock.release();
  }
}

/** Staging directories of pulls whose process is gone (killed half-way): what gc removes. */
export function isDeadStaging(ownerText: string | undefined): boolean {
  return !isOwnerRunning(ownerText ?? '');
}
