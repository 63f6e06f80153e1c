// An OCI image's manifest and config, read from a layout skopeo wrote, and
// what of the config applies to a job, as with `docker run`: Env reaches
// every stage, WorkingDir is where stages start. Entrypoint and Cmd do not
// apply (the machine's payload is the stage agent, and gitlab-runner's
// scripts are the commands), nor does User: stages run as root, as on every
// nspawn-runner machine (README, "OCI images").
import { readFileSync, statSync } from 'node:fs';
import { SystemError } from '../errors.mts';
import { resolveInside } from '../image/personality.mts';
import { stageEnv } from '../job/stage-agent.mts';
import type { Descriptor, ImageConfig } from './store.mts';
import { digestPattern } from './store.mts';

export interface LayoutImage {
  manifest: Descriptor;
  config: ImageConfig;
  /** The manifest, config and layer digests. */
  blobs: string[];
  /** Bytes of config and layers as stored. */
  blobBytes: number;
}

function readJson(path: string): Record<string, unknown> {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new SystemError(`the pulled image is unreadable: ${path} is not a JSON object`);
}

function descriptorOf(value: unknown, what: string): Descriptor {
  const { mediaType, digest, size } = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if (typeof digest !== 'string' || !digestPattern.test(digest) || typeof size !== 'number') {
    throw new SystemError(`the pulled image has a bad ${what} descriptor`);
  }
  return { mediaType: typeof mediaType === 'string' ? mediaType : '', digest, size };
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);
const text = (value: unknown): string => (typeof value === 'string' ? value : '');

/** The one image of a layout skopeo copied (its index has one manifest), with its config. */
export function readLayoutImage(layout: string): LayoutImage {
  const blob = (digest: string) => `${layout}/blobs/sha256/${digest.slice('sha256:'.length)}`;
  const index = readJson(`${layout}/index.json`);
  const manifests = Array.isArray(index.manifests) ? index.manifests : [];
  if (manifests.length !== 1) throw new SystemError(`the pulled image's layout has ${manifests.length} manifests instead of one`);
  const manifest = descriptorOf(manifests[0], 'manifest');
  const body = readJson(blob(manifest.digest));
  const config = descriptorOf(body.config, 'config');
  const layers = (Array.isArray(body.layers) ? body.layers : []).map((layer) => descriptorOf(layer, 'layer'));
  const document = readJson(blob(config.digest));
  const run = (typeof document.config === 'object' && document.config !== null ? document.config : {}) as Record<string, unknown>;
  return {
    manifest,
    config: {
      env: strings(run.Env),
      workingDir: text(run.WorkingDir),
      user: text(run.User),
      entrypoint: strings(run.Entrypoint),
      cmd: strings(run.Cmd),
      exposedTcpPorts: tcpPortsOf(run.ExposedPorts),
      os: text(document.os),
      architecture: text(document.architecture),
    },
    blobs: [manifest.digest, config.digest, ...layers.map((layer) => layer.digest)],
    blobBytes: config.size + layers.reduce((sum, layer) => sum + layer.size, 0),
  };
}

/** ExposedPorts keys: "80/tcp", "53/udp", or a bare "80" (tcp). */
function tcpPortsOf(value: unknown): number[] {
  if (typeof value !== 'object' || value === null) return [];
  return Object.keys(value).flatMap((key) => {
    const match = /^(\d{1,5})(?:\/tcp)?$/.exec(key);
    const port = Number(match?.[1]);
    return match && port > 0 && port < 65536 ? [port] : [];
  });
}

/**
 * Whether a manifest the registry sent (raw, as `skopeo inspect --raw` prints
 * it) names the image a layout holds: the same config and layers. The
 * layout's own manifest may differ in its bytes (skopeo rewrites Docker's
 * format as OCI's). A manifest list never does: it names its platforms'
 * manifests, by their digests only.
 */
export function isImageOf(raw: string, image: LayoutImage): boolean {
  let manifest: unknown;
  try {
    manifest = JSON.parse(raw);
  } catch {
    return false;
  }
  const { config, layers } = (typeof manifest === 'object' && manifest !== null ? manifest : {}) as Record<string, unknown>;
  if (typeof config !== 'object' || config === null || !Array.isArray(layers)) return false;
  const named = [(config as Record<string, unknown>).digest, ...layers.map((layer: unknown) => (layer as Record<string, unknown> | null)?.digest)];
  const held = image.blobs.slice(1);
  return named.length === held.length && named.every((digest, index) => digest === held[index]);
}

const variableName = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The environment of every stage on this image: our defaults, overridden and
 * extended by the image's Env (PATH, JAVA_HOME, ...). Entries that are no
 * NAME=VALUE, or hold a NUL, are dropped. The shared gitlab-runner sits in
 * /usr/local/bin, so PATH gets it when the image's does not.
 */
export function stageEnvFor(imageEnv: readonly string[]): string[] {
  const entries = new Map<string, string>();
  for (const entry of [...stageEnv, ...imageEnv]) {
    const equals = entry.indexOf('=');
    const name = entry.slice(0, equals);
    if (equals <= 0 || !variableName.test(name) || entry.includes('\0')) continue;
    entries.set(name, entry.slice(equals + 1));
  }
  const path = entries.get('PATH')!;
  if (!path.split(':').includes('/usr/local/bin')) entries.set('PATH', `${path}:/usr/local/bin`);
  return [...entries].map(([name, value]) => `${name}=${value}`);
}

/** Where stages start: the image's WorkingDir when it is an absolute, plain path, else /. */
export function stageWorkdirFor(workingDir: string): string {
  return workingDir.startsWith('/') && !workingDir.includes('\0') && !workingDir.includes('\n') ? workingDir : '/';
}

/**
 * What the stage agent (stage-agent.mts) runs: /bin/sh itself; env, found in
 * the default PATH it starts with; setsid and mkfifo, found in the stages'
 * PATH it switches to.
 */
const defaultDirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function isExecutableInside(tree: string, path: string): boolean {
  const resolved = resolveInside(tree, path);
  try {
    const stats = resolved ? statSync(resolved) : undefined;
    return stats !== undefined && stats.isFile() && (stats.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** The stage agent's programs the tree lacks (symlinks resolved inside the tree, never on the host). */
export function missingAgentTools(tree: string, stageEnv: readonly string[] = stageEnvFor([])): string[] {
  const stagePath = (stageEnv.find((entry) => entry.startsWith('PATH=')) ?? '').slice('PATH='.length).split(':').filter((dir) => dir.startsWith('/'));
  const found = (tool: string, dirs: string[]) => dirs.some((dir) => isExecutableInside(tree, `${dir}/${tool}`));
  return [
    ...(isExecutableInside(tree, '/bin/sh') ? [] : ['/bin/sh']),
    ...(found('env', defaultDirs) ? [] : ['env']),
    ...['setsid', 'mkfifo'].filter((tool) => !found(tool, stagePath)),
  ];
}
