// What we know about an image beyond its tree, kept beside its versions in
// .images/NAME/image.json: how it was made (so a recreate can make it the
// same way) and how its last maintenance went (for chroot-list). Written
// only by the holder of the image's lock, atomically.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { BootstrapOptions } from './bootstrap.mts';
import { imageStoreDir } from './resolve.mts';
import type { Settings } from '../settings.mts';

export interface ImageMeta {
  created?: BootstrapOptions & { at: string; version: string };
  maintained?: { at: string; ok: boolean; how: 'maintenance' | 'create' | 'login'; version?: string; playbook?: string; error?: string };
}

export function readImageMeta(settings: Settings, name: string): ImageMeta {
  try {
    return JSON.parse(readFileSync(`${imageStoreDir(settings, name)}/image.json`, 'utf8')) as ImageMeta;
  } catch {
    return {};
  }
}

export function updateImageMeta(settings: Settings, name: string, change: Partial<ImageMeta>): void {
  const path = `${imageStoreDir(settings, name)}/image.json`;
  writeFileSync(`${path}.tmp`, `${JSON.stringify({ ...readImageMeta(settings, name), ...change }, null, 1)}\n`);
  renameSync(`${path}.tmp`, path);
}

