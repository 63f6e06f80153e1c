#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// chroot-remove: removes an image and every version of it no job uses.
import { main } from '../lib/cli.mts';
import { UsageError } from '../lib/errors.mts';
import { removeImage } from '../lib/image-admin.mts';

await main({
  name: 'chroot-remove',
  summary: 'Remove image NAME (all its versions and btrfs subvolumes). Refused while jobs run on it,\n' +
    'unless --force: then the name goes at once and the versions in use go when their jobs end.\n' +
    'The playbook, if any, stays: remove it too, or chroot-maintenance creates the image again.',
  usage: '[--force] NAME',
  options: ['  -f, --force            remove it even while jobs run on it'],
  boolean: ['force'],
  alias: { f: 'force' },
  needsRoot: true,
}, async (args, settings) => {
  const name = args._[0];
  if (name === undefined) throw new UsageError('chroot-remove: missing NAME');
  await removeImage(settings, String(name), Boolean(args.force));
});
