// chroot-create: bootstraps a Debian image into the state directory.
import { main } from '../lib/cli.mts';
import { convertImageToSubvolume, createImage, fallbackSuite, type Bootstrapper } from '../lib/bootstrap.mts';
import { log } from '../lib/log.mts';
import { UsageError } from '../lib/errors.mts';
import { parseChoice } from '../lib/settings.mts';

await main({
  name: 'chroot-create',
  summary: 'Bootstrap a Debian image NAME (minbase plus bash, git, ca-certificates, systemd, dbus, python3)\n' +
    'into the state directory. Built in a temporary directory and moved into place only when complete.',
  usage: '[--convert] [--suite SUITE] [--mirror URL] [--arch ARCH] [--packages P1,P2] [--bootstrapper debootstrap|mmdebstrap] NAME',
  options: [
    `      --suite SUITE      Debian suite (default ${fallbackSuite})`,
    '      --mirror URL       Debian mirror (default: the bootstrapper\'s)',
    '      --arch ARCH        architecture, such as i386 (default: the host\'s)',
    '      --packages LIST    extra packages, comma-separated',
    '      --bootstrapper B   debootstrap (default) or mmdebstrap (faster)',
    '      --convert          turn the existing plain-directory image NAME into a btrfs subvolume',
  ],
  string: ['suite', 'mirror', 'arch', 'packages', 'bootstrapper'],
  boolean: ['convert'],
  needsRoot: true,
}, async (args, settings) => {
  const name = args._[0];
  if (name === undefined) throw new UsageError('chroot-create: missing NAME');
  if (args.convert) {
    const outcome = await convertImageToSubvolume(settings, String(name));
    log.info(outcome === 'already' ? `image ${name} is a subvolume already` : `image ${name} is now a btrfs subvolume`);
    return;
  }
  const bootstrapper = parseChoice<Bootstrapper>(args.bootstrapper ?? 'debootstrap', ['debootstrap', 'mmdebstrap'], 'bootstrapper', 'command line');
  await createImage(settings, String(name), {
    suite: args.suite ?? fallbackSuite,
    mirror: args.mirror,
    arch: args.arch,
    packages: args.packages ? String(args.packages).split(',').filter(Boolean) : [],
    bootstrapper,
  });
});
