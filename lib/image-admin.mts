// An admin's hands on an image: chroot-login and chroot-remove.
import { renameSync } from 'node:fs';
import { isatty } from 'node:tty';
import { SystemError } from './errors.mts';
import { zx } from './exec.mts';
import { imagePath, imageStoreDir, validateImageName } from './image.mts';
import { jobsOnImage, removeUnusedVersions } from './image-retire.mts';
import {
  currentTree, layoutOf, listVersions, lockImage, migratePlainImage, newVersionName, publishVersion, releaseImage, unpublishImage,
} from './image-store.mts';
import { updateImageMeta } from './image-meta.mts';
import { log } from './log.mts';
import { removeTree } from './mounts.mts';
import { makeVersion } from './maintenance.mts';
import { buildImageShellArgs } from './nspawn.mts';
import { imagePersonality } from './personality.mts';
import { findPlaybook } from './playbook.mts';
import type { Settings } from './settings.mts';

/**
 * chroot-login: a root shell (or COMMAND) in image NAME. It never runs in the
 * version in service: overlay and tmpfs jobs use that as their lower layer,
 * and changing the lower layer of a mounted overlay is undefined behaviour
 * (kernel docs, overlayfs, "Changes to underlying filesystems"); on btrfs
 * running jobs have their own snapshots, but a job starting mid-session would
 * get half a change on any backend. So the shell runs in a new version (a
 * snapshot or reflink copy), published when the shell exits with status 0:
 * running jobs are never disturbed and need no refusing. Returns the exit status.
 */
export async function loginImage(settings: Settings, name: string, command: string[]): Promise<number> {
  validateImageName(name);
  const lock = lockImage(settings, name, 'chroot-login');
  try {
    const layout = layoutOf(settings, name);
    if (layout === 'missing') {
      throw new SystemError(`image "${name}" not found at ${imagePath(settings, name)}`, `create it with: nspawn-runner chroot-create ${name}`);
    }
    const jobs = jobsOnImage(settings, name);
    if (jobs.length) log.info(`${jobs.length} job(s) running on image ${name} (${jobs.map((job) => job.jobId).join(', ')}) keep the version they started with`);
    if (layout === 'plain') migratePlainImage(settings, name);
    log.info(`image ${name}: making a new version from ${currentTree(settings, name)}`);
    const version = await makeVersion(settings, name, { cloneFrom: currentTree(settings, name) });
    const tree = `${imageStoreDir(settings, name)}/${version}`;
    const interactive = command.length === 0 && isatty(0) && isatty(1);
    log.info(`image ${name}: ${command.length ? 'running the command' : 'shell'} in a new version; it goes into service when ${command.length ? 'the command' : 'the shell'} exits with status 0 (\`exit 1\` discards it)`);
    const argv = buildImageShellArgs(tree, { console: interactive ? 'interactive' : 'pipe', image: name, personality: imagePersonality(tree) }, command);
    // Ctrl-C belongs to the shell inside; we wait for it to end either way.
    const ignore = () => undefined;
    process.on('SIGINT', ignore).on('SIGQUIT', ignore);
    let code: number;
    try {
      const $ = await zx();
      code = (await $({ stdio: 'inherit', nothrow: true })`${argv}`).exitCode ?? 128;
    } finally {
      process.off('SIGINT', ignore).off('SIGQUIT', ignore);
    }
    if (code === 0) {
      publishVersion(settings, name, version);
      updateImageMeta(settings, name, { maintained: { at: new Date().toISOString(), ok: true, how: 'login', version } });
      log.info(`image ${name}: version ${version} in service`);
      await removeUnusedVersions(settings, name);
    } else {
      await removeTree(tree);
      log.warn(`image ${name}: exit status ${code}: changes discarded, the previous version stays in service`);
    }
    return code;
  } finally {
    releaseImage(settings, name, lock);
  }
}

/**
 * chroot-remove: removes image NAME. Refused while jobs run on it, unless
 * forced: then NAME goes at once and the versions those jobs use go when the
 * last of them is cleaned up. An admin's symlink is removed, never its target.
 */
export async function removeImage(settings: Settings, name: string, force: boolean): Promise<void> {
  validateImageName(name);
  const lock = lockImage(settings, name, 'chroot-remove');
  try {
    const layout = layoutOf(settings, name);
    if (layout === 'missing' && listVersions(settings, name).length === 0) {
      throw new SystemError(`image "${name}" not found at ${imagePath(settings, name)}`);
    }
    const jobs = jobsOnImage(settings, name);
    if (jobs.length && !force) {
      throw new SystemError(`image "${name}" is in use by job ${jobs.map((job) => job.jobId).join(', ')}`,
        'retry when those jobs have finished, or pass --force: they keep running, and their version goes when they end');
    }
    if (layout === 'plain' && jobs.length) {
      // Into the store, unpublished: deleted with the other versions once unused.
      renameSync(imagePath(settings, name), `${imageStoreDir(settings, name)}/${newVersionName(new Date(), true)}`);
    } else if (layout === 'plain') {
      await removeTree(imagePath(settings, name));
    } else if (layout !== 'missing') {
      unpublishImage(settings, name);
    }
    await removeUnusedVersions(settings, name);
    const kept = listVersions(settings, name);
    log.info(`image ${name} removed${kept.length ? `; versions ${kept.join(', ')} go when jobs ${jobs.map((job) => job.jobId).join(', ')} end` : ''}`);
    const playbook = findPlaybook(settings, name);
    if (playbook) log.warn(`playbook ${playbook} still exists: chroot-maintenance will create image ${name} again (remove the playbook to retire the image)`);
  } finally {
    releaseImage(settings, name, lock);
  }
}
