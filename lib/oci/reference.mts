// OCI image references as docker, podman and GitLab write them:
// `[registry[:port]/]path[:tag][@digest]`, with Docker Hub's short names
// (`node:20` is docker.io/library/node:20). The grammar is distribution's
// (distribution/reference, regexp.go), narrowed where we can: only sha256
// digests, no IPv6 literals. References come from CI users and end up in
// skopeo's argv, so this one parser is the boundary: whatever passes it
// starts with a letter or digit and holds no space, quote or control byte.
import { JobError } from '../errors.mts';
import { globToRegExp } from '../image/resolve.mts';

export interface OciReference {
  /** host[:port]; "docker.io" for Docker Hub. */
  registry: string;
  /** The path in the registry; Docker Hub's official images are under library/. */
  repository: string;
  /** undefined only when the reference names a digest and no tag. */
  tag: string | undefined;
  /** sha256:<64 hex digits>, when the reference pins one. */
  digest: string | undefined;
}

/** Forces the OCI meaning of `image:`, skipping the local images (README, "OCI images"). */
export const ociPrefix = 'docker://';

const maxReferenceLength = 512;
const maxNameLength = 255;
const alphaNumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|-+)';
const pathComponent = new RegExp(`^${alphaNumeric}(?:${separator}${alphaNumeric})*$`);
const domainComponent = '(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])';
const domainPattern = new RegExp(`^${domainComponent}(?:\\.${domainComponent})*(?::[0-9]{1,5})?$`);
const tagPattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const digestPattern = /^sha256:[a-f0-9]{64}$/;

export const dockerHub = 'docker.io';

function refuse(text: string, why: string): never {
  throw new JobError(`invalid image reference ${JSON.stringify(text)}: ${why}`);
}

/** Whether text carries the prefix that forces the OCI meaning. */
export function hasOciPrefix(text: string): boolean {
  return text.startsWith(ociPrefix);
}

/**
 * Parses a reference (with or without the docker:// prefix), or throws a
 * JobError naming what is wrong. Tag defaults to latest unless a digest is given.
 */
export function parseOciReference(input: string): OciReference {
  const text = hasOciPrefix(input) ? input.slice(ociPrefix.length) : input;
  if (text === '') refuse(input, 'it is empty');
  if (text.length > maxReferenceLength) refuse(input, `it is longer than ${maxReferenceLength} characters`);
  if (/[\u0000-\u0020\u007f"'\\]/.test(text)) refuse(input, 'it contains a space, a quote, a backslash or a control character');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestPattern.test(digest)) refuse(input, 'the digest must be sha256: and 64 lowercase hex digits');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) refuse(input, `bad tag ${JSON.stringify(tag)}: up to 128 letters, digits, "_", "." and "-", not starting with "." or "-"`);
  }
  if (rest.length > maxNameLength) refuse(input, `the name is longer than ${maxNameLength} characters`);
  const components = rest.split('/');
  let registry = dockerHub;
  const first = components[0]!;
  // distribution's splitDomain: a first component with a dot or a port, or
  // localhost, or capitals, is a registry host; anything else is Docker Hub.
  if (components.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    if (!domainPattern.test(first)) refuse(input, `bad registry ${JSON.stringify(first)}`);
    registry = first === 'index.docker.io' ? dockerHub : first;
    components.shift();
  }
  for (const component of components) {
    if (!pathComponent.test(component)) {
      refuse(input, `bad path component ${JSON.stringify(component)}: lowercase letters and digits, separated by ".", "_", "__" or "-"`);
    }
  }
  if (registry === dockerHub && components.length === 1) components.unshift('library');
  return { registry, repository: components.join('/'), tag: tag ?? (digest ? undefined : 'latest'), digest };
}

/** The canonical text: registry/repository[:tag][@digest]. */
export function formatReference(reference: OciReference): string {
  return `${reference.registry}/${reference.repository}${reference.tag ? `:${reference.tag}` : ''}${reference.digest ? `@${reference.digest}` : ''}`;
}

/**
 * What skopeo fetches: by digest when there is one (skopeo refuses a tag and
 * a digest together, and the digest is what counts), else by tag.
 */
export function transportReference(reference: OciReference, digest = reference.digest): string {
  const name = `${reference.registry}/${reference.repository}`;
  return `docker://${digest ? `${name}@${digest}` : `${name}:${reference.tag ?? 'latest'}`}`;
}

/** The same reference with its digest: what a user pins (`image@sha256:...`). */
export function pinnedReference(reference: OciReference, digest: string): string {
  return formatReference({ ...reference, digest });
}

/** Whether a registry (host[:port]) matches one of the globs (`*` and `?`). */
export function registryMatches(registry: string, globs: readonly string[]): boolean {
  return globs.some((glob) => globToRegExp(glob).test(registry));
}
