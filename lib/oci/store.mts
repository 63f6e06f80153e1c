// Where pulled images live. <root>/.oci is one OCI image layout shared by
// every pull, so a blob (a base layer) is stored once whatever number of
// images use it; beside it, each image digest is unpacked once into a tree
// that jobs use copy-on-write, like a local image version.
//
//   .oci/oci-layout, index.json, blobs/sha256/   the layout (index: one entry per pulled image)
//   .oci/images/<key>/tree/            the unpacked image, read-only (a read-only subvolume on btrfs)
//   .oci/images/<key>/image.json       digest, reference, blobs, image config
//   .oci/images/<key>/last-used        rewritten by every prepare on it (gc reads its mtime)
//   .oci/refs/<hash>.json              what a reference (tag) resolved to last
//   .oci/staging/<pid>-<random>/       pulls under way; gc removes those of dead processes
//   .oci/locks/<key>/                  one unpack per image at a time (lock.mts)
//   .oci/locks/ref-<hash>/             one first pull per reference at a time
//
// A key is the digest the reference resolved to (`sha256-<hex>`), plus the
// platform when a job asked for another than the host's. An image directory
// exists only complete: a pull builds it in staging and renames it into place.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { sha256Hex } from '../crypto.mts';
import type { Settings } from '../settings.mts';
import type { OciReference } from './reference.mts';
import { formatReference } from './reference.mts';
import type { Platform } from './skopeo.mts';

/** What an image's config says about running it (OCI image-spec, config.md). */
export interface ImageConfig {
  env: string[];
  workingDir: string;
  user: string;
  entrypoint: string[];
  cmd: string[];
  /** TCP ports of ExposedPorts ("5432/tcp"); absent in images pulled before services. */
  exposedTcpPorts?: number[];
  os: string;
  architecture: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** .oci/images/<key>/image.json */
export interface PulledImageMeta {
  key: string;
  /** What the reference resolved to: an image manifest, or a manifest list of several platforms. */
  digest: string;
  /** The platform asked for (os/arch[/variant]), null for the host's. */
  platform: string | null;
  /** The reference of the first pull. */
  reference: string;
  /** The image manifest in the layout, for its index. */
  manifest: Descriptor;
  /** Every blob of the image in the layout: manifest, config and layers. */
  blobs: string[];
  /** Bytes of the config and the (compressed) layers. */
  blobBytes: number;
  config: ImageConfig;
  pulledAt: string;
  /** Programs the stage agent needs that the image lacks; prepare refuses such an image. */
  missingTools: string[];
}

export interface PulledImage {
  meta: PulledImageMeta;
  /** Real path of the tree jobs start from. */
  tree: string;
}

export const digestPattern = /^sha256:[a-f0-9]{64}$/;
const keyPattern = /^sha256-[a-f0-9]{64}(-[a-z0-9]+){0,3}$/;

export function ociDir(settings: Settings): string {
  return `${settings.root}/.oci`;
}

export function blobPath(settings: Settings, digest: string): string {
  if (!digestPattern.test(digest)) throw new Error(`not a sha256 digest: ${JSON.stringify(digest)}`);
  return `${ociDir(settings)}/blobs/sha256/${digest.slice('sha256:'.length)}`;
}

export function platformName(platform: Platform | undefined): string | null {
  return platform ? [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/') : null;
}

export function imageKey(digest: string, platform: Platform | undefined): string {
  const name = platformName(platform);
  return `${digest.replace(':', '-')}${name ? `-${name.replaceAll('/', '-')}` : ''}`;
}

export function isImageKey(name: string): boolean {
  return keyPattern.test(name);
}

export function imageDir(settings: Settings, key: string): string {
  if (!isImageKey(key)) throw new Error(`not an image key: ${JSON.stringify(key)}`);
  return `${ociDir(settings)}/images/${key}`;
}

export function treeOf(settings: Settings, key: string): string {
  return `${imageDir(settings, key)}/tree`;
}

/** Creates the shared layout once; every part is idempotent, so racing creators agree. */
export function ensureLayout(settings: Settings): void {
  const dir = ociDir(settings);
  for (const sub of ['blobs/sha256', 'images', 'refs', 'staging', 'locks']) mkdirSync(`${dir}/${sub}`, { recursive: true, mode: 0o700 });
  if (!existsSync(`${dir}/oci-layout`)) writeAtomically(`${dir}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}\n');
  if (!existsSync(`${dir}/index.json`)) writeAtomically(`${dir}/index.json`, '{"schemaVersion":2,"manifests":[]}\n');
}

export function writeAtomically(path: string, text: string): void {
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, text, { mode: 0o600 });
  renameSync(temporary, path);
}

export function readImageMeta(settings: Settings, key: string): PulledImageMeta | undefined {
  try {
    const meta = JSON.parse(readFileSync(`${imageDir(settings, key)}/image.json`, 'utf8')) as PulledImageMeta;
    return meta.key === key ? meta : undefined;
  } catch {
    return undefined;
  }
}

/** The pulled image of key, when it is complete and in service. */
export function findPulledImage(settings: Settings, key: string): PulledImage | undefined {
  const meta = readImageMeta(settings, key);
  if (!meta || !existsSync(treeOf(settings, key))) return undefined;
  return { meta, tree: treeOf(settings, key) };
}

export function listImageKeys(settings: Settings): string[] {
  try {
    return readdirSync(`${ociDir(settings)}/images`).filter(isImageKey).sort();
  } catch {
    return [];
  }
}

/** Marks the image used now; gc removes images unused for oci.gc_unused_after. */
export function touchImage(settings: Settings, key: string): void {
  try {
    writeFileSync(`${imageDir(settings, key)}/last-used`, `${new Date().toISOString()}\n`);
  } catch {
    // an image removed meanwhile: prepare notices it (isServedImagePath)
  }
}

export function lastUsed(settings: Settings, key: string): Date | undefined {
  for (const name of ['last-used', 'image.json']) {
    try {
      return statSync(`${imageDir(settings, key)}/${name}`).mtime;
    } catch {
      // try the next
    }
  }
  return undefined;
}

/** .oci/refs/<hash>.json: the digest a tag pointed at when last resolved. */
export interface RefRecord {
  reference: string;
  platform: string | null;
  digest: string;
  key: string;
  resolvedAt: string;
}

const refIds = new Map<string, Promise<string>>();

/** The reference without its digest, and the platform: what names a ref record and the lock of a first pull (pull.mts). */
export function refId(reference: OciReference, platform: Platform | undefined): Promise<string> {
  const name = `${formatReference({ ...reference, digest: undefined })}|${platformName(platform) ?? ''}`;
  // A pull names the same reference up to four times.
  let id = refIds.get(name);
  if (!id) {
    id = sha256Hex(name);
    refIds.set(name, id);
  }
  return id;
}

async function refPath(settings: Settings, reference: OciReference, platform: Platform | undefined): Promise<string> {
  return `${ociDir(settings)}/refs/${await refId(reference, platform)}.json`;
}

export async function readRef(settings: Settings, reference: OciReference, platform: Platform | undefined): Promise<RefRecord | undefined> {
  try {
    const record = JSON.parse(readFileSync(await refPath(settings, reference, platform), 'utf8')) as RefRecord;
    return isImageKey(record.key) ? record : undefined;
  } catch {
    return undefined;
  }
}

export async function writeRef(settings: Settings, reference: OciReference, platform: Platform | undefined, digest: string, key: string): Promise<void> {
  const record: RefRecord = {
    reference: formatReference({ ...reference, digest: undefined }), platform: platformName(platform), digest, key, resolvedAt: new Date().toISOString(),
  };
  writeAtomically(await refPath(settings, reference, platform), `${JSON.stringify(record)}\n`);
}

export function listRefs(settings: Settings): Array<RefRecord & { file: string }> {
  const dir = `${ociDir(settings)}/refs`;
  let files: string[];
  try {
    files = readdirSync(dir).filter((name) => /^[a-f0-9]{64}\.json$/.test(name));
  } catch {
    return [];
  }
  return files.flatMap((file) => {
    try {
      return [{ ...(JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')) as RefRecord), file: `${dir}/${file}` }];
    } catch {
      return [];
    }
  });
}

/**
 * Rewrites the layout's index.json from the images there are, so tools
 * (`skopeo inspect oci:<root>/.oci:<key>`, `umoci ls`) see every pulled
 * image. A full rewrite renamed into place: racing writers each write a
 * whole index, and the next pull or gc brings it up to date.
 */
export function writeLayoutIndex(settings: Settings): void {
  const manifests = listImageKeys(settings).flatMap((key) => {
    const meta = readImageMeta(settings, key);
    return meta ? [{ ...meta.manifest, annotations: { 'org.opencontainers.image.ref.name': key } }] : [];
  });
  writeAtomically(`${ociDir(settings)}/index.json`, `${JSON.stringify({ schemaVersion: 2, manifests })}\n`);
}
