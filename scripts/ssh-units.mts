#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// ssh-units: writes the socket and service units of the ssh-executor mode.
import { existsSync, realpathSync, writeFileSync } from 'node:fs';
import { main } from '../lib/cli.mts';
import { SystemError, UsageError } from '../lib/errors.mts';
import { resolveImage, validateImageName } from '../lib/image.mts';
import { log } from '../lib/log.mts';
import { buildSshUnits } from '../lib/ssh-units.mts';

await main({
  name: 'ssh-units',
  summary: 'Write a systemd socket unit (Accept=yes) and a templated service that start, for every ssh\n' +
    'connection, an ephemeral read-only machine from IMAGE running `sshd -i`, gone when the connection\n' +
    'closes. Then: systemctl daemon-reload && systemctl enable --now nspawn-runner-ssh-IMAGE.socket',
  usage: '[--port N] [--user NAME] --authorized-keys FILE [--output DIR] IMAGE',
  options: [
    '      --port N           TCP port to listen on (default 2222)',
    '      --user NAME        the image\'s build user, who gets a tmpfs home (default build)',
    '      --authorized-keys F  public keys allowed to log in (bound read-only into each machine)',
    '      --output DIR       where to write the units (default /etc/systemd/system)',
  ],
  string: ['port', 'user', 'authorized-keys', 'output'],
  needsRoot: true,
}, async (args, settings) => {
  const image = args._[0];
  if (image === undefined) throw new UsageError('ssh-units: missing IMAGE');
  const imagePath = resolveImage(settings, validateImageName(String(image)));
  if (!existsSync(`${imagePath}/usr/sbin/sshd`)) {
    throw new SystemError(`image ${image} has no /usr/sbin/sshd`, 'install openssh-server in it (see contrib/ssh-image.yaml)');
  }
  const keys = args['authorized-keys'];
  if (!keys || !existsSync(keys)) throw new UsageError('ssh-units: --authorized-keys FILE is required and must exist');
  const port = Number(args.port ?? 2222);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`ssh-units: bad port ${args.port}`);
  const units = buildSshUnits({
    image: String(image),
    port,
    executable: realpathSync(new URL('../bin/nspawn-runner', import.meta.url)),
    globalArgs: [`--root=${settings.root}`],
    user: args.user ?? 'build',
    authorizedKeys: realpathSync(keys),
  });
  const output = args.output ?? '/etc/systemd/system';
  for (const [name, text] of Object.entries(units)) {
    writeFileSync(`${output}/${name}`, text);
    log.info(`wrote ${output}/${name}`);
  }
});
