// The one place a storage backend is chosen: forced by configuration, or from
// the filesystem type of the state directory (statfs(2)).
import { statfsSync } from 'node:fs';
import { SystemError } from '../errors.mts';
import type { BackendName } from '../job.mts';
import type { Settings } from '../settings.mts';
import type { StorageBackend } from './backend.mts';
import { overlayBackend } from './overlay.mts';

const BTRFS_SUPER_MAGIC = 0x9123683e;

export function filesystemIsBtrfs(path: string): boolean {
  return statfsSync(path).type === BTRFS_SUPER_MAGIC;
}

export function chooseBackendName(settings: Settings): BackendName {
  if (settings.backend === 'auto') return filesystemIsBtrfs(settings.root) ? 'btrfs' : 'overlay';
  if (settings.backend === 'btrfs' && !filesystemIsBtrfs(settings.root)) {
    throw new SystemError(`backend btrfs needs ${settings.root} on btrfs`, 'use backend overlay or tmpfs, or move the state directory to btrfs');
  }
  return settings.backend;
}

export async function backendByName(name: BackendName): Promise<StorageBackend> {
  switch (name) {
    case 'overlay': return overlayBackend;
    default: throw new SystemError(`storage backend ${name} is not available yet`, 'use backend overlay');
  }
}
