#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// shell: a throw-away copy of a CI image for a person, as themselves, via sudo.
import { realpathSync, statSync } from 'node:fs';
import { main } from '../lib/cli.mts';
import { SystemError, UsageError } from '../lib/errors.mts';
import { runAttached } from '../lib/exec.mts';
import { checkImageAllowed, resolveImage, validateImageName } from '../lib/image.mts';
import { imagePersonality } from '../lib/personality.mts';
import { buildShellArgs, checkTrustedPath, invokingUserName, lookupUser, shellMachineName, type ShellBind } from '../lib/shell.mts';
import { parseChoice } from '../lib/settings.mts';

await main({
  name: 'shell',
  summary: 'Run COMMAND (default: your login shell) in a throw-away, read-only copy of IMAGE, as yourself.\n' +
    'Your home (or only the current directory, --bind cwd) is writable and kept; every other write vanishes.\n' +
    'Meant for sudo: see contrib/sudoers.d-nspawn-runner. The exit code is the command\'s.',
  usage: '[--bind home|cwd] [--user NAME] IMAGE [-- COMMAND...]',
  options: [
    '      --bind WHAT        home (default) or cwd: what stays writable',
    '      --user NAME        run as NAME (root only; under sudo you are yourself)',
  ],
  string: ['bind', 'user'],
  needsRoot: true,
}, async (args, settings) => {
  const [image, ...rest] = args._.map(String);
  if (!image) throw new UsageError('shell: missing IMAGE');
  if (rest.length) throw new UsageError('shell: put the command after "--"');
  const underSudo = Boolean(process.env.SUDO_USER) && process.env.SUDO_USER !== 'root';
  if (underSudo && Object.keys(process.env).some((key) => key.startsWith('NSPAWN_RUNNER_'))) {
    throw new SystemError('NSPAWN_RUNNER_* variables are not accepted under sudo', 'use the sudoers snippet, which resets the environment');
  }
  const name = checkImageAllowed(settings, validateImageName(image));
  const imagePath = resolveImage(settings, name);
  if (underSudo) {
    checkTrustedPath(settings.root, 'state directory');
    checkTrustedPath(imagePath, 'image');
  }
  const user = lookupUser(invokingUserName(process.env, args.user));
  const bind = parseChoice<ShellBind>(args.bind ?? 'home', ['home', 'cwd'], 'bind', 'command line');
  const cwd = realpathSync(process.cwd());
  if (bind === 'cwd' && statSync(cwd).uid !== user.uid) {
    throw new SystemError(`--bind cwd: ${cwd} does not belong to ${user.name}`, 'run it from a directory of your own');
  }
  const argv = buildShellArgs({
    imagePath, user, cwd, bind,
    command: (args['--'] ?? []).map(String),
    machine: shellMachineName(user.name, process.pid),
    interactive: Boolean(process.stdin.isTTY),
    personality: imagePersonality(imagePath),
    term: process.env.TERM,
  });
  // nspawn gets a clean environment: nothing of the caller's leaks in but TERM.
  return runAttached(argv, { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' });
});
