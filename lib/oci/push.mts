// chroot-push: a local image (as chroot-create and maintenance made it)
// exported as an OCI image to a registry, so other runners use it by
// `image:` and pin it by digest (README, "Many runners"). The tree becomes
// one layer (umoci insert), with a config that says what it is; the image's
// lock is held while it is read, so no maintenance changes it meanwhile.
import { mkdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { SystemError, UsageError } from '../errors.mts';
import { check, run } from '../exec.mts';
import { validateImageName } from '../image/resolve.mts';
import { currentTree, lockImage, releaseImage } from '../image/store.mts';
import { log } from '../log.mts';
import { removeTree } from '../mounts.mts';
import { imagePersonality } from '../image/personality.mts';
import type { Settings } from '../settings.mts';
import { findCredential, secretsOf, writeAuthFile } from './auth.mts';
import { formatReference, parseOciReference, registryMatches, transportReference } from './reference.mts';
import { buildPushArgs, registryError } from './skopeo.mts';

const architectures: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: '386' };

/** umoci command lines that turn a tree into a one-layer image in a new layout. Pure, tested as a table. */
export function buildExportCommands(layout: string, tree: string, name: string, architecture: string): string[][] {
  const image = `--image=${layout}:image`;
  return [
    ['umoci', 'init', `--layout=${layout}`],
    ['umoci', 'new', image],
    ['umoci', 'insert', image, `--history.created_by=nspawn-runner chroot-push ${name}`, '--', tree, '/'],
    ['umoci', 'config', image, `--architecture=${architecture}`, '--os=linux',
      '--config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '--config.cmd=/bin/bash',
      `--config.label=org.opencontainers.image.title=${name}`, '--history.created_by=nspawn-runner chroot-push'],
  ];
}

/** Pushes image NAME as REFERENCE; returns the reference pinned by the digest the registry got. */
export async function pushImage(settings: Settings, name: string, referenceText: string): Promise<string> {
  validateImageName(name);
  const reference = parseOciReference(referenceText);
  if (reference.digest) throw new UsageError('chroot-push: give the reference a tag, not a digest (the registry decides the digest)');
  const { claimStaging } = await import('../job/gc.mts');
  const lock = lockImage(settings, name, 'chroot-push');
  const staging = `${settings.root}/.staging/push-${name}-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    let tree: string;
    try {
      tree = currentTree(settings, name);
    } catch {
      throw new SystemError(`image ${name} not found in ${settings.root}`, 'see nspawn-runner chroot-list');
    }
    mkdirSync(staging, { recursive: true, mode: 0o700 });
    claimStaging(staging);
    const architecture = imagePersonality(tree) === 'x86' ? '386' : (architectures[process.arch] ?? process.arch);
    log.info(`exporting image ${name} (${tree}) as an OCI image`);
    for (const argv of buildExportCommands(`${staging}/layout`, tree, name, architecture)) {
      await check(argv, { env: { PATH: process.env.PATH, TMPDIR: staging, HOME: staging } });
    }
    const credential = findCredential(reference.registry, { jobAuthConfig: undefined, credentialsFile: settings.oci.credentialsFile });
    const access = {
      insecure: registryMatches(reference.registry, settings.oci.insecureRegistries),
      authFile: credential ? writeAuthFile(`${staging}/auth.json`, credential) : undefined,
      timeoutSeconds: settings.oci.pullTimeoutSeconds,
    };
    const target = formatReference(reference);
    log.info(`pushing ${target}`);
    const pushed = await run(buildPushArgs(`${staging}/layout`, 'image', transportReference(reference), `${staging}/digest`, access),
      { env: { PATH: process.env.PATH, TMPDIR: staging, HOME: staging } });
    if (pushed.code !== 0) throw registryError(`push of ${name} to ${target}`, pushed.stderr, secretsOf(credential), reference.registry);
    const digest = readFileSync(`${staging}/digest`, 'utf8').trim();
    return `${target}@${digest}`;
  } finally {
    await removeTree(staging);
    releaseImage(settings, name, lock);
  }
}
