// ssh-executor mode: one ephemeral machine per ssh connection. systemd
// accepts each connection on a socket (Accept=yes) and starts an instance of
// a templated service with the connection as stdin/stdout; that instance runs
// `nspawn-runner ssh-session`, which boots nothing: it runs `sshd -i` in a
// throw-away, read-only copy of the image, with a tmpfs home for the build
// user. The machine ends with the connection.
import { escapeColons } from '../nspawn.mts';
import type { ShellUser } from './shell.mts';

export interface SshUnitOptions {
  image: string;
  port: number;
  /** bin/nspawn-runner of this installation, and the global options it needs. */
  executable: string;
  globalArgs: string[];
  user: string;
  authorizedKeys: string;
}

/** Unit names for IMAGE: nspawn-runner-ssh-IMAGE.socket and nspawn-runner-ssh-IMAGE@.service. */
export function sshUnitBase(image: string): string {
  return `nspawn-runner-ssh-${image.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
}

/** systemd unit files quote words with double quotes and backslashes. */
function unitQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `"${word.replace(/["\\]/g, '\\$&').replace(/%/g, '%%')}"`;
}

export function buildSshUnits(options: SshUnitOptions): Record<string, string> {
  const base = sshUnitBase(options.image);
  const command = [options.executable, ...options.globalArgs, 'ssh-session', '--user', options.user,
    '--authorized-keys', options.authorizedKeys, options.image];
  return {
    [`${base}.socket`]: [
      '[Unit]',
      `Description=nspawn-runner: an ephemeral ${options.image} machine per ssh connection on port ${options.port}`,
      '',
      '[Socket]',
      `ListenStream=${options.port}`,
      'Accept=yes',
      // Each connection is a machine: bound them like concurrent CI jobs.
      'MaxConnections=64',
      '',
      '[Install]',
      'WantedBy=sockets.target',
      '',
    ].join('\n'),
    [`${base}@.service`]: [
      '[Unit]',
      `Description=nspawn-runner: ephemeral ${options.image} machine for ssh connection %i`,
      '',
      '[Service]',
      `ExecStart=${command.map(unitQuote).join(' ')}`,
      'StandardInput=socket',
      'StandardOutput=socket',
      'StandardError=journal',
      // SIGTERM to nspawn first, so it takes its machine down; then the rest.
      'KillMode=mixed',
      'Slice=machine.slice',
      '',
    ].join('\n'),
  };
}

export interface SshSessionRequest {
  imagePath: string;
  machine: string;
  user: ShellUser;
  authorizedKeys: string;
  register: boolean;
  personality?: string;
}

const keysInside = '/etc/ssh/nspawn-runner-authorized-keys';

/** systemd-nspawn for one connection: stdin/stdout are the connection, sshd -i speaks on them. */
export function buildSshSessionArgs(request: SshSessionRequest): string[] {
  const { user } = request;
  const args = [
    'systemd-nspawn', '--quiet',
    `--machine=${request.machine}`,
    `--directory=${request.imagePath}`,
    '--volatile=overlay',
    request.register ? '--register=yes' : '--register=no', '--keep-unit',
    '--link-journal=no',
    '--console=pipe',
    `--tmpfs=${escapeColons(user.home)}:mode=0700,uid=${user.uid},gid=${user.gid}`,
    `--bind-ro=${escapeColons(request.authorizedKeys)}:${keysInside}`,
  ];
  if (request.personality) args.push(`--personality=${request.personality}`);
  args.push('--', '/bin/sh', '-c',
    // sshd wants its privilege separation directory, which lives in /run.
    `mkdir -p /run/sshd && exec /usr/sbin/sshd -i -e -o AuthorizedKeysFile=${keysInside} -o PasswordAuthentication=no`);
  return args;
}

export function sshMachineName(image: string, pid: number): string {
  return `ssh-${image.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40)}-${pid}`;
}
