// The second half of a pull (pull.mts): an image skopeo copied into a staging
// layout, unpacked by umoci into a tree of its own, checked, and published
// with one rename. pull.mts loads this module while skopeo copies, so a cold
// pull does not wait for it (and for btrfs, mounts, the image config) to load.
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { createSubvolume, isBtrfs, setSubvolumeReadOnly } from '../btrfs.mts';
import { JobError, SystemError } from '../errors.mts';
import { run } from '../exec.mts';
import { log } from '../log.mts';
import { removeTree } from '../mounts.mts';
import type { Settings } from '../settings.mts';
import { redact } from './auth.mts';
import { missingAgentTools, stageEnvFor, type LayoutImage } from './image-config.mts';
import { buildUnpackArgs, toolEnv, type Platform } from './skopeo.mts';
import { findPulledImage, imageDir, platformName, writeAtomically, writeLayoutIndex, type PulledImage, type PulledImageMeta } from './store.mts';

export interface CopiedImage {
  /** The reference as written, for messages and image.json. */
  name: string;
  /** What the reference resolved to: the manifest (or manifest list) digest that keys the image. */
  digest: string;
  key: string;
  platform: Platform | undefined;
  /** The staging layout skopeo copied the image into, and what it holds. */
  layout: string;
  image: LayoutImage;
  /** The pull's own directory, where the tree is made. */
  staging: string;
  /** Masked in umoci's messages. */
  secrets: string[];
}

/** Unpacks a copied image and publishes it under its key. The caller holds the key's lock and found it unpublished. */
export async function unpackAndPublish(settings: Settings, copied: CopiedImage): Promise<PulledImage> {
  const { name, digest, key, image, staging } = copied;
  log.info(`unpacking ${name} (${digest})`);
  const target = `${staging}/image`;
  // A failed attempt under an earlier pull policy may have left its own.
  await removeTree(`${target}/tree`);
  await removeTree(target);
  mkdirSync(target, { mode: 0o755 });
  const tree = `${target}/tree`;
  const onBtrfs = isBtrfs(target);
  if (onBtrfs) await createSubvolume(tree);
  else mkdirSync(tree, { mode: 0o755 });
  await unpack(copied.layout, tree, name, copied.secrets, staging);
  // systemd-nspawn refuses a root without /usr ("doesn't look like it has
  // an OS tree"), which busybox and distroless images often lack.
  if (!existsSync(`${tree}/usr`)) mkdirSync(`${tree}/usr`, { mode: 0o755 });
  const meta: PulledImageMeta = {
    key,
    digest,
    platform: platformName(copied.platform),
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
