#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// chroot-login: a root shell, or one command, in an image, for maintenance by hand.
import { main } from '../lib/cli.mts';
import { UsageError } from '../lib/errors.mts';
import { loginImage } from '../lib/image-admin.mts';

await main({
  name: 'chroot-login',
  summary: 'Open a root shell in image NAME (or run COMMAND there) to change the image by hand.\n' +
    'The shell runs in a new version of the image, which goes into service when the shell exits\n' +
    'with status 0; any other status discards it. Jobs running meanwhile keep the version they started with.',
  usage: 'NAME [-- COMMAND [ARGS...]]',
  needsRoot: true,
}, async (args, settings) => {
  const name = args._[0];
  if (name === undefined) throw new UsageError('chroot-login: missing NAME');
  if (args._.length > 1) throw new UsageError('chroot-login: put the command after "--"');
  return loginImage(settings, String(name), (args['--'] ?? []).map(String));
});
