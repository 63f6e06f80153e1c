// The one place a storage backend is chosen: forced by configuration, or from
// the filesystem type of the state directory (statfs(2)).
import { SystemError } from '../errors.mts';
import { isBtrfs } from '../btrfs.mts';
import type { BackendName } from './backend.mts';
import type { Settings } from '../settings.mts';
import type { StorageBackend } from './backend.mts';


export function chooseBackendName(settings: Settings): BackendName {
  if (settings.backend === 'auto') return isBtrfs(settings.root) ? 'btrfs' : 'overlay';
  if (settings.backend === 'btrfs' && !isBtrfs(settings.root)) {
    throw new SystemError(`backend btrfs needs the state directory ${settings.root} on btrfs`,
      'set backend: overlay or tmpfs, or move the state directory to a btrfs filesystem');
  }
  return settings.backend;
}

export async function backendByName(name: BackendName, settings: Settings): Promise<StorageBackend> {
  switch (name) {
    case 'overlay': return (await import('./overlay.mts')).overlayBackend(settings);
    case 'btrfs': return (await import('./btrfs.mts')).btrfsBackend(settings);
    case 'tmpfs': return (await import('./tmpfs.mts')).tmpfsBackend(settings);
  }
}
