#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// chroot-create: bootstraps a Debian image into the state directory, then
// applies its playbook if it has one.
import { main } from '../lib/cli.mts';
import { fallbackSuite, type BootstrapOptions } from '../lib/bootstrap.mts';
import type { Bootstrapper } from '../lib/playbook.mts';
import { log } from '../lib/log.mts';
import { UsageError } from '../lib/errors.mts';
import { convertImage, createImage } from '../lib/maintenance.mts';
import { parseChoice } from '../lib/settings.mts';

const list = (value: unknown) => (value === undefined ? undefined : String(value).split(',').filter(Boolean));

await main({
  name: 'chroot-create',
  summary: 'Bootstrap a Debian image NAME (minbase plus bash, git, ca-certificates, systemd, dbus, python3)\n' +
    'and apply its playbook (NAME.yaml in the config or state directory) if there is one.\n' +
    'Each setting comes from the command line, else the playbook\'s nspawn_runner_chroot_* vars, else the default.\n' +
    'Nothing is published unless everything succeeded.',
  usage: '[--suite SUITE] [--mirror URL] [--arch ARCH] [--packages P1,P2] [--components C1,C2] [--bootstrapper B] NAME\n' +
    '       nspawn-runner chroot-create --convert NAME',
  options: [
    `      --suite SUITE      Debian suite (default ${fallbackSuite})`,
    '      --mirror URL       Debian mirror (default: the bootstrapper\'s)',
    '      --arch ARCH        architecture, such as i386 (default: the host\'s)',
    '      --packages LIST    extra packages, comma-separated',
    '      --components LIST  archive components, such as main,contrib (default: main)',
    '      --bootstrapper B   debootstrap (default) or mmdebstrap (faster)',
    '      --convert          make the existing image NAME a btrfs subvolume, so its jobs run on snapshots',
  ],
  string: ['suite', 'mirror', 'arch', 'packages', 'components', 'bootstrapper'],
  boolean: ['convert'],
  needsRoot: true,
}, async (args, settings) => {
  const name = args._[0];
  if (name === undefined) throw new UsageError('chroot-create: missing NAME');
  if (args.convert) {
    const outcome = await convertImage(settings, String(name));
    log.info(outcome === 'already' ? `image ${name} is a subvolume already` : `image ${name} is now a btrfs subvolume`);
    return;
  }
  const commandLine: Partial<BootstrapOptions> = {
    suite: args.suite,
    mirror: args.mirror,
    arch: args.arch,
    packages: list(args.packages),
    components: list(args.components),
    bootstrapper: args.bootstrapper === undefined ? undefined
      : parseChoice<Bootstrapper>(args.bootstrapper, ['debootstrap', 'mmdebstrap'], 'bootstrapper', 'command line'),
  };
  await createImage(settings, String(name), commandLine);
});
