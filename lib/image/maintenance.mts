// Creating and maintaining images: chroot-create, chroot-maintenance and
// --convert. Every change is made on a new version of the image and
// published only when it is complete (image/store.mts), so jobs running on
// the image never see it change and a failure leaves the image as it was.
import { isSubvolume, isBtrfs } from '../btrfs.mts';
import { bootstrapTree, convertImageToSubvolume, fallbackSuite, resolveCreateOptions, type BootstrapOptions } from './bootstrap.mts';
import { SystemError } from '../errors.mts';
import { imagePath, imageStoreDir, validateImageName } from './resolve.mts';
import { removeUnusedVersions } from './retire.mts';
import {
  cloneTree, currentTree, layoutOf, lockImage, migratePlainImage, newVersionName, publishVersion, releaseImage,
} from './store.mts';
import { readImageMeta, updateImageMeta, type ImageMeta } from './meta.mts';
import { log } from '../log.mts';
import { removeTree } from '../mounts.mts';
import { imagePersonality } from './personality.mts';
import { findPlaybook, listPlaybookNames, readPlaybook, type Playbook } from './playbook.mts';
import { startProgress, type Progress } from './progress.mts';
import type { Settings } from '../settings.mts';

export interface VersionPlan {
  /** Start from a fresh bootstrap with these settings ... */
  bootstrap?: BootstrapOptions;
  /** ... or from a copy of this tree (the current version). */
  cloneFrom?: string;
  playbook?: Playbook;
  /** What the change is, in the name of its log file: create, recreate, update, login, convert. */
  purpose?: string;
}

/** Progress of work on image NAME: a live line on a terminal, its tools' output in .images/NAME/logs/. */
export function imageProgress(settings: Settings, name: string, what: string): Progress {
  return startProgress({
    label: `image ${name}`,
    logDir: `${imageStoreDir(settings, name)}/logs`,
    what,
    live: Boolean(process.stderr.isTTY),
    columns: process.stderr.columns,
  });
}

/**
 * Makes a new, unpublished version of image NAME and returns its name. The
 * caller holds the image's lock. Anything half-made is removed on failure.
 */
export async function makeVersion(settings: Settings, name: string, plan: VersionPlan): Promise<string> {
  const version = newVersionName();
  const tree = `${imageStoreDir(settings, name)}/${version}`;
  const progress = imageProgress(settings, name, plan.purpose ?? (plan.bootstrap ? 'create' : 'update'));
  // A signal reaches our children too (same process group, same cgroup):
  // they stop, and we only have to remove what they left.
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    log.warn(`${signal}: stopping, then removing the unfinished version ${tree}`);
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  try {
    if (plan.bootstrap) {
      await bootstrapTree(tree, plan.bootstrap, `image ${name}`, progress);
    } else {
      progress.phase(`copying ${plan.cloneFrom}`);
      await cloneTree(plan.cloneFrom!, tree);
    }
    if (interrupted) throw new SystemError(`interrupted by ${interrupted}`);
    if (plan.playbook) {
      await runPlaybookOn(tree, name, plan.playbook, progress);
      if (interrupted) throw new SystemError(`interrupted by ${interrupted}`);
    }
    progress.done(`version ${version} made`);
    return version;
  } catch (error) {
    progress.fail();
    await removeTree(tree);
    throw error;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}

async function runPlaybookOn(tree: string, name: string, playbook: Playbook, progress: Progress): Promise<void> {
  const { runPlaybook } = await import('./ansible.mts');
  await runPlaybook({ playbook: playbook.path, tree, image: name, personality: imagePersonality(tree), progress, countTasks: Boolean(process.stderr.isTTY) });
}

/** The image's playbook, read and checked, or undefined when it has none. Warnings are logged. */
export async function loadPlaybook(settings: Settings, name: string): Promise<Playbook | undefined> {
  const path = findPlaybook(settings, name);
  if (!path) return undefined;
  const playbook = await readPlaybook(path);
  for (const warning of playbook.warnings) log.warn(warning);
  if (!playbook.runnable) {
    throw new SystemError(`${path} is not a playbook ansible can run`, 'fix it (see the warning above), or move it out of the way');
  }
  return playbook;
}

function createdMeta(version: string, options: BootstrapOptions): ImageMeta['created'] {
  return { at: new Date().toISOString(), version, ...options };
}

/** chroot-create: bootstraps image NAME, runs its playbook if it has one, publishes it. */
export async function createImage(settings: Settings, name: string, commandLine: Partial<BootstrapOptions>): Promise<string> {
  validateImageName(name);
  const lock = lockImage(settings, name, 'chroot-create');
  try {
    if (layoutOf(settings, name) !== 'missing') {
      throw new SystemError(`image "${name}" already exists at ${imagePath(settings, name)}`,
        `update it with chroot-maintenance ${name} or chroot-login ${name}, or remove it with chroot-remove ${name}`);
    }
    // Read before bootstrapping: a broken playbook should cost seconds, not a bootstrap.
    const playbook = await loadPlaybook(settings, name);
    const options = resolveCreateOptions({ commandLine, playbook: playbook?.vars }, fallbackSuite);
    const version = await makeVersion(settings, name, { bootstrap: options, playbook });
    publishVersion(settings, name, version);
    updateImageMeta(settings, name, {
      created: createdMeta(version, options),
      maintained: { at: new Date().toISOString(), ok: true, how: 'create', version, playbook: playbook?.path },
    });
    log.info(`image ${name} created at ${imagePath(settings, name)}${playbook ? `, playbook ${playbook.path} applied` : ''}`);
    return imagePath(settings, name);
  } finally {
    releaseImage(settings, name, lock);
  }
}

/**
 * chroot-maintenance for one image: create it if missing, recreate it if its
 * playbook says so, else update a copy of the current version; then run the
 * playbook on the new version and publish it. Throws when anything failed;
 * the image then stays as it was.
 */
export async function maintainImage(settings: Settings, name: string): Promise<void> {
  validateImageName(name);
  const playbook = await loadPlaybook(settings, name);
  if (!playbook) {
    throw new SystemError(`image ${name} has no playbook in ${settings.configDir} or ${settings.root}`,
      `write ${settings.configDir}/${name}.yaml (see README.md, "Playbooks")`);
  }
  const lock = lockImage(settings, name, 'chroot-maintenance');
  try {
    await removeUnusedVersions(settings, name);
    const layout = layoutOf(settings, name);
    const plan: VersionPlan = { playbook };
    if (layout === 'missing' || playbook.vars.recreate) {
      const { created } = readImageMeta(settings, name);
      plan.bootstrap = resolveCreateOptions({ playbook: playbook.vars, recorded: created }, undefined);
      plan.purpose = layout === 'missing' ? 'create' : 'recreate';
      log.info(`image ${name}: ${layout === 'missing' ? 'missing: creating it' : 'recreating it (nspawn_runner_maint_recreate)'}`);
    } else {
      if (layout === 'plain') migratePlainImage(settings, name);
      plan.cloneFrom = currentTree(settings, name);
      log.info(`image ${name}: updating a copy of ${plan.cloneFrom}`);
    }
    try {
      const version = await makeVersion(settings, name, plan);
      publishVersion(settings, name, version);
      updateImageMeta(settings, name, {
        ...(plan.bootstrap ? { created: createdMeta(version, plan.bootstrap) } : {}),
        maintained: { at: new Date().toISOString(), ok: true, how: 'maintenance', version, playbook: playbook.path },
      });
      log.info(`image ${name}: version ${version} in service`);
    } catch (error) {
      if (layoutOf(settings, name) !== 'missing') {
        updateImageMeta(settings, name, {
          maintained: { at: new Date().toISOString(), ok: false, how: 'maintenance', playbook: playbook.path, error: (error as Error).message },
        });
      }
      throw error;
    }
    await removeUnusedVersions(settings, name);
  } finally {
    releaseImage(settings, name, lock);
  }
}

export interface MaintenanceReport {
  succeeded: string[];
  failed: string[];
}

/** chroot-maintenance: every image with a playbook (or just the named ones), each on its own. */
export async function maintainImages(settings: Settings, names?: string[]): Promise<MaintenanceReport> {
  const report: MaintenanceReport = { succeeded: [], failed: [] };
  const todo = names?.length ? names : listPlaybookNames(settings, (path) => log.warn(`${path}: not a valid image name: skipped`));
  if (!todo.length) log.info(`no playbooks in ${settings.configDir} or ${settings.root}: nothing to maintain`);
  for (const name of todo) {
    try {
      await maintainImage(settings, name);
      report.succeeded.push(name);
    } catch (error) {
      const hint = (error as SystemError).hint;
      log.error(`image ${name}: ${(error as Error).message}${hint ? ` (${hint})` : ''}`);
      report.failed.push(name);
    }
  }
  return report;
}

/** chroot-create --convert: makes the image a btrfs subvolume, so its jobs get snapshots. */
export async function convertImage(settings: Settings, name: string): Promise<'converted' | 'already'> {
  validateImageName(name);
  const lock = lockImage(settings, name, 'chroot-create --convert');
  try {
    const layout = layoutOf(settings, name);
    if (layout === 'missing') throw new SystemError(`image "${name}" not found at ${imagePath(settings, name)}`);
    if (layout === 'plain') {
      const progress = imageProgress(settings, name, 'convert');
      try {
        const outcome = await convertImageToSubvolume(settings, name, progress);
        progress.done(outcome === 'already' ? 'a subvolume already' : 'converted');
        return outcome;
      } catch (error) {
        progress.fail();
        throw error;
      }
    }
    const tree = currentTree(settings, name);
    if (isSubvolume(tree)) return 'already';
    if (!isBtrfs(settings.root)) throw new SystemError(`${settings.root} is not on btrfs: there is nothing to convert to`);
    // A copy made in the store is a subvolume (cloneTree): publish it like any update.
    publishVersion(settings, name, await makeVersion(settings, name, { cloneFrom: tree, purpose: 'convert' }));
    await removeUnusedVersions(settings, name);
    return 'converted';
  } finally {
    releaseImage(settings, name, lock);
  }
}
