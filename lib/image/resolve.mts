// Image names and where a job finds its image. Image NAME is <root>/NAME:
// a plain directory (made by hand or by the original nspawn-runner), or a
// symlink into the versioned store <root>/.images/NAME/ (image/store.mts).
// Either way a job resolves it to a real path once, at prepare, and keeps
// that version. Names come from CI users: validate before any use.
import { existsSync, lstatSync, readdirSync, statSync, realpathSync } from 'node:fs';
import { JobError } from '../errors.mts';
import type { Settings } from '../settings.mts';

const maxNameLength = 100;
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
// A component of a docker-style reference: a registry host may carry a :port.
const referenceComponent = /^[A-Za-z0-9][A-Za-z0-9._:@+-]*$/;

/** Returns name if it is a safe image name, else throws a JobError saying why. */
export function validateImageName(name: string): string {
  const problem = imageNameProblem(name);
  if (problem) throw new JobError(`invalid image name ${JSON.stringify(name)}: ${problem}`);
  return name;
}

export function isImageName(name: string): boolean {
  return imageNameProblem(name) === undefined;
}

function imageNameProblem(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (name.includes('\0')) return 'it contains a NUL byte';
  if (name.length > maxNameLength) return `it is longer than ${maxNameLength} characters`;
  if (name.includes('/')) return 'it contains "/"';
  if (name.startsWith('.')) return 'it starts with "."';
  if (name.startsWith('-')) return 'it starts with "-"';
  if (name.includes('..')) return 'it contains ".."';
  if (!namePattern.test(name)) return 'only letters, digits and . _ + - are allowed';
  return undefined;
}

/**
 * Maps what a job asks for to an image name, the way the original does:
 * `registry/path/name:tag` and `base:NAME` both name the image after the
 * last colon of the last path component (`debian:bookworm` is "bookworm").
 * Each path component is checked first, so `../x` or `/etc` never map to a
 * harmless-looking name.
 */
export function imageNameFromReference(reference: string): string {
  const components = reference.split('/');
  if (components.length > 1 || reference.includes(':')) {
    for (const component of components) {
      if (component === '' || !referenceComponent.test(component) || component.includes('..')) {
        throw new JobError(`invalid image reference ${JSON.stringify(reference)}: bad path component ${JSON.stringify(component)}`);
      }
    }
  }
  const last = components.at(-1)!.split('@')[0]!;
  return validateImageName(last.split(':').at(-1)!);
}

/** Names of the images present in the state directory, sorted. */
export function listImageNames(settings: Settings): string[] {
  let entries: string[];
  try {
    entries = readdirSync(settings.root);
  } catch {
    return [];
  }
  return entries
    .filter((name) => !imageNameProblem(name) && isDirectory(`${settings.root}/${name}`))
    .sort();
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function imagePath(settings: Settings, name: string): string {
  return `${settings.root}/${validateImageName(name)}`;
}

/** The versioned store of every image: a dot-directory, so never an image itself. */
export function imagesDir(settings: Settings): string {
  return `${settings.root}/.images`;
}

/** Where the versions of image NAME live. */
export function imageStoreDir(settings: Settings, name: string): string {
  return `${imagesDir(settings)}/${validateImageName(name)}`;
}

/** Beside a version the store marks for deletion: prepare must not start on it. */
export function retiredMarker(versionPath: string): string {
  return `${versionPath}.retired`;
}

/**
 * Whether a resolved image path can still be used, checked after the job
 * record naming it is written. Old versions are deleted only when no job
 * record names them: a version marked retired, gone, or a plain image that
 * became a symlink since it was resolved must be resolved again.
 */
export function isServedImagePath(path: string): boolean {
  try {
    return lstatSync(path).isDirectory() && !existsSync(retiredMarker(path));
  } catch {
    return false;
  }
}

/**
 * The directory a new machine of this image starts from. Resolved to its real
 * path once, at prepare, so a job keeps the image version it started with.
 */
export function resolveImage(settings: Settings, name: string): string {
  const path = imagePath(settings, name);
  // A plain image moving into the store is missing for the instant between
  // two renames (a directory cannot be replaced by a symlink atomically):
  // look again before calling it missing. Only the failure path waits.
  for (let attempt = 0; attempt < 10 && !isDirectory(path) && existsSync(imageStoreDir(settings, name)); attempt++) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  if (!isDirectory(path)) {
    const available = listImageNames(settings);
    throw new JobError(
      `image "${name}" not found in ${settings.root}; available: ${available.length ? available.join(', ') : 'none'}`,
      `create it with: nspawn-runner chroot-create ${name}`,
    );
  }
  return realpathSync(path);
}

/** A glob with * and ? (like gitlab-runner's allowed_images) as an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.');
  return new RegExp(`^${body}$`);
}

/** Refuses an image the admin's allowed_images does not list. */
export function checkImageAllowed(settings: Settings, name: string): string {
  const allowed = settings.allowedImages;
  if (allowed && !allowed.some((glob) => globToRegExp(glob).test(name))) {
    throw new JobError(`image "${name}" is not allowed on this runner; allowed: ${allowed.join(', ')}`);
  }
  return name;
}
