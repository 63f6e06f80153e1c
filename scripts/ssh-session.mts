#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// ssh-session: one ssh connection's machine, started by the ssh-units service.
import { main } from '../lib/cli.mts';
import { UsageError } from '../lib/errors.mts';
import { runAttached } from '../lib/exec.mts';
import { checkImageAllowed, resolveImage, validateImageName } from '../lib/image.mts';
import { detectHostName } from '../lib/host/select.mts';
import { imagePersonality } from '../lib/personality.mts';
import { lookupUser } from '../lib/shell.mts';
import { readFileSync } from 'node:fs';
import { buildSshSessionArgs, sshMachineName } from '../lib/ssh-units.mts';

await main({
  name: 'ssh-session',
  summary: 'Run `sshd -i` on stdin/stdout in a throw-away, read-only copy of IMAGE (used by the ssh-units service).',
  usage: '--user NAME --authorized-keys FILE IMAGE',
  string: ['user', 'authorized-keys'],
  needsRoot: true,
}, async (args, settings) => {
  const image = args._[0];
  const keys = args['authorized-keys'];
  if (image === undefined || !keys || !args.user) throw new UsageError('ssh-session: IMAGE, --user and --authorized-keys are required');
  const name = checkImageAllowed(settings, validateImageName(String(image)));
  const imagePath = resolveImage(settings, name);
  // The build user as the image knows it: its uid owns the tmpfs home.
  const user = lookupUser(args.user, readFileSync(`${imagePath}/etc/passwd`, 'utf8'));
  const argv = buildSshSessionArgs({
    imagePath, user, authorizedKeys: keys,
    machine: sshMachineName(name, process.pid),
    register: detectHostName() === 'systemd',
    personality: imagePersonality(imagePath),
  });
  return runAttached(argv, { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' });
});
