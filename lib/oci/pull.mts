// Getting a job's OCI image into the store (store.mts): resolve the
// reference to a digest, pull that digest with skopeo into the shared layout,
// unpack it once with umoci, publish it with one rename.
//
// - One pull per image: the first prepare takes the image's lock and pulls;
//   the others wait for the lock and find the image published.
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
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createSubvolume, isBtrfs, setSubvolumeReadOnly } from '../btrfs.mts';
import { JobError, SystemError } from '../errors.mts';
import { run } from '../exec.mts';
import { tryLock, type Lock } from '../lock.mts';
import { log } from '../log.mts';
import { removeTree } from '../mounts.mts';
import { isOwnerRunning, ownerMark, sleep } from '../proc.mts';
import type { PullPolicy, Settings } from '../settings.mts';
import { findCredential, redact, secretsOf, writeAuthFile, type CredentialSources, type RegistryCredential } from './auth.mts';
import { missingAgentTools, readLayoutImage, stageEnvFor } from './image-config.mts';
import { formatReference, registryMatches, transportReference, type OciReference } from './reference.mts';
import { buildInspectArgs, buildPullArgs, buildUnpackArgs, registryError, type Platform, type RegistryAccess } from './skopeo.mts';
import {
  ensureLayout, findPulledImage, imageDir, imageKey, ociDir, platformName, readRef, writeAtomically, writeLayoutIndex, writeRef,
  type PulledImage, type PulledImageMeta,
} from './store.mts';

export interface ObtainRequest {
  reference: OciReference;
  /** Tried in order; the first that yields an image wins (gitlab-runner's fallback). */
  policies: readonly PullPolicy[];
  platform: Platform | undefined;
  credentials: CredentialSources;
}

/** What a pull needs beyond the request: a private directory, and the credential in a file there. */
interface Session {
  staging(): string;
  access(): RegistryAccess;
  secrets(): string[];
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
      const dir = `${stagingRoot(settings)}/${process.pid}-${randomBytes(4).toString('hex')}`;
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
    async dispose() {
      if (authFile) rmSync(authFile, { force: true });
      for (const signal of signals) process.off(signal, onSignal);
      // An image that was not published: its tree may be a read-only subvolume.
      if (staging) await removeTree(`${staging}/image/tree`);
      if (staging) await removeTree(staging);
    },
  };
  return session;
}

/**
 * The job's image in the store, pulled when the pull policies say so. Errors
 * say whose fault it is (registry.mts): a missing image or refused access
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
export function findStoredImage(settings: Settings, reference: OciReference, platform: Platform | undefined): PulledImage | undefined {
  const key = reference.digest ? imageKey(reference.digest, platform) : readRef(settings, reference, platform)?.key;
  return key ? findPulledImage(settings, key) : undefined;
}

async function obtainWithPolicy(settings: Settings, request: ObtainRequest, policy: PullPolicy, session: Session): Promise<PulledImage> {
  const { reference, platform } = request;
  const name = formatReference(reference);
  if (policy !== 'always') {
    const stored = findStoredImage(settings, reference, platform);
    if (stored) {
      log.verbose(`image ${name}: using ${stored.meta.digest}, pulled before (pull_policy ${policy})`);
      return stored;
    }
    if (policy === 'never') {
      throw new JobError(`image ${name} is not on this runner, and pull_policy is never`, `pull it first: nspawn-runner oci-pull ${name}`);
    }
  }
  // "always" asks the registry every time (a moved tag, revoked access);
  // a digest needs no asking otherwise.
  const digest = policy !== 'always' && reference.digest ? reference.digest : await resolveDigest(reference, session);
  const key = imageKey(digest, platform);
  const image = findPulledImage(settings, key) ?? await pullImage(settings, request, digest, key, session);
  if (reference.tag) writeRef(settings, reference, platform, digest, key);
  return image;
}

/** The digest the reference names now: the sha256 of the manifest (or manifest list) the registry serves. */
async function resolveDigest(reference: OciReference, session: Session): Promise<string> {
  const transport = transportReference(reference);
  const result = await run(buildInspectArgs(transport, session.access()), { env: toolEnv(session.staging()) });
  if (result.code !== 0) throw registryError(`image ${formatReference(reference)}`, result.stderr, session.secrets(), reference.registry);
  const digest = `sha256:${createHash('sha256').update(result.stdout).digest('hex')}`;
  if (reference.digest && digest !== reference.digest) {
    throw new SystemError(`image ${formatReference(reference)}: the registry served a manifest whose digest is ${digest}`);
  }
  return digest;
}

/** skopeo and umoci see nothing of the job's or root's environment; their temporary files go with the staging directory. */
function toolEnv(staging: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: staging, TMPDIR: staging };
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

/** Waits while gc deletes blobs; the caller registered its pull first (its staging directory). */
async function waitForGc(settings: Settings, timeoutMs: number): Promise<void> {
  const lock = await waitForLock(gcLockPath(settings), 'pull', 'the image store', timeoutMs);
  lock.release();
}

async function pullImage(settings: Settings, request: ObtainRequest, digest: string, key: string, session: Session): Promise<PulledImage> {
  const name = formatReference(request.reference);
  const timeoutMs = settings.oci.pullTimeoutSeconds * 1000;
  const lock = await waitForLock(`${ociDir(settings)}/locks/${key}`, `pull of ${name}`, `image ${name}`, timeoutMs);
  try {
    // Whoever held the lock may have published it meanwhile.
    const published = findPulledImage(settings, key);
    if (published) return published;
    const staging = session.staging();
    await waitForGc(settings, timeoutMs);
    log.info(`pulling ${name} (${digest}${request.platform ? `, ${platformName(request.platform)}` : ''})`);
    const layout = `${staging}/layout`;
    mkdirSync(layout, { mode: 0o700 });
    symlinkSync('../../../blobs', `${layout}/blobs`);
    const transport = transportReference(request.reference, digest);
    const copied = await run(buildPullArgs(transport, layout, 'image', session.access()), { env: toolEnv(staging) });
    if (copied.code !== 0) throw registryError(`image ${name}`, copied.stderr, session.secrets(), request.reference.registry);
    const image = readLayoutImage(layout);
    const target = `${staging}/image`;
    mkdirSync(target, { mode: 0o755 });
    const tree = `${target}/tree`;
    const onBtrfs = isBtrfs(target);
    if (onBtrfs) await createSubvolume(tree);
    else mkdirSync(tree, { mode: 0o755 });
    await unpack(layout, tree, name, session.secrets(), staging);
    // systemd-nspawn refuses a root without /usr ("doesn't look like it has
    // an OS tree"), which busybox and distroless images often lack.
    if (!existsSync(`${tree}/usr`)) mkdirSync(`${tree}/usr`, { mode: 0o755 });
    const meta: PulledImageMeta = {
      key,
      digest,
      platform: platformName(request.platform),
      reference: name,
      manifest: image.manifest,
      blobs: image.blobs,
      blobBytes: image.blobBytes,
      config: image.config,
      pulledAt: new Date().toISOString(),
      missingTools: missingAgentTools(tree, stageEnvFor(image.config.env)),
    };
    if (onBtrfs) await setSubvolumeReadOnly(tree);
    writeAtomically(`${target}/image.json`, `${JSON.stringify(meta, null, 1)}\n`);
    try {
      renameSync(target, imageDir(settings, key));
    } catch (error) {
      // Published by a pull that took over a lock it judged stale: theirs is as good.
      if (!findPulledImage(settings, key)) throw error;
    }
    writeLayoutIndex(settings);
    return findPulledImage(settings, key)!;
  } finally {
    lock.release();
  }
}

async function unpack(layout: string, tree: string, name: string, secrets: string[], staging: string): Promise<void> {
  const result = await run(buildUnpackArgs(layout, 'image', tree), { env: toolEnv(staging) });
  if (result.code === 0) return;
  const message = redact(result.stderr.trim().split('\n').filter((line) => !/unpacking rootfs/.test(line)).slice(-2).join(' / '), secrets)
    .replace(/^\s*[⨯•]\s*/u, '');
  if (/no space left on device|disk quota exceeded|input\/output error|read-only file system/i.test(message)) {
    throw new SystemError(`image ${name}: unpacking failed, nothing kept: ${message}`, 'free space in the state directory');
  }
  // umoci keeps every path inside the tree; what it refuses is the image's own doing.
  throw new JobError(`image ${name} cannot be unpacked: ${message}`);
}

/** Staging directories of pulls whose process is gone (killed half-way): what gc removes. */
export function isDeadStaging(ownerText: string | undefined): boolean {
  return !isOwnerRunning(ownerText ?? '');
}
