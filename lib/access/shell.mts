// Ephemeral build shells for people: a throw-away, read-only copy of a CI
// image, run as the invoking user, through sudo. The wrapper decides every
// nspawn option; the user chooses only the image (validated and allowed
// like a job's) and the command, which goes after nspawn's "--".
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { JobError, SystemError } from '../errors.mts';

export interface ShellUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** The user from the host's /etc/passwd, the same file the machine sees. */
export function lookupUser(name: string, passwd = readFileSync('/etc/passwd', 'utf8')): ShellUser {
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid, , home, shell] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) {
      return { name, uid: Number(uid), gid: Number(gid), home: home || '/', shell: shell || '/bin/sh' };
    }
  }
  throw new SystemError(`user ${JSON.stringify(name)} not found in /etc/passwd`);
}

/**
 * Under sudo, everything that decides what runs as root must be root's:
 * the state directory, the image, the config file. Otherwise a user could
 * point the wrapper at a tree of their own making.
 */
export function checkTrustedPath(path: string, what: string): void {
  const real = realpathSync(path);
  for (let dir = real; ; dir = dir.slice(0, dir.lastIndexOf('/')) || '/') {
    const stat = statSync(dir);
    if (stat.uid !== 0 || (stat.mode & 0o022 && !(stat.mode & 0o1000))) {
      throw new SystemError(`${what} ${path} is not trusted: ${dir} is not owned by root or is writable by others`,
        'under sudo, images and the state directory must belong to root');
    }
    if (dir === '/') return;
  }
}

export type ShellBind = 'home' | 'cwd';

export interface ShellRequest {
  imagePath: string;
  user: ShellUser;
  /** The caller's working directory (its real path). */
  cwd: string;
  bind: ShellBind;
  command: string[];
  machine: string;
  interactive: boolean;
  personality?: string;
  term?: string;
}

/** Where nspawn keeps a directory per machine, and removes it when the machine exits. */
const propagateDir = '/run/systemd/nspawn/propagate';

/**
 * Runs the rest of the command line in a mount namespace of its own with a
 * tmpfs on nspawn's propagate directory. nspawn refuses to remove a tree on a
 * disk filesystem, and on hosts whose /run is not a tmpfs it said so on every
 * exit ("Attempted to remove disk file system under .../propagate/<machine>")
 * on the stderr it shares with the user's command (--console=pipe). Fixing
 * the cause keeps the terminal the command's own, with nothing filtered and
 * nothing left to log; the tmpfs goes with the namespace. Should the mount
 * fail, nspawn runs anyway: the user sees that line again, nothing worse.
 */
export function buildQuietPropagateArgs(): string[] {
  return [
    'unshare', '--mount', '--propagation=private', '--',
    '/bin/sh', '-c', `{ mkdir -p ${propagateDir} && mount -t tmpfs -o mode=0755,size=4m nspawn-runner ${propagateDir}; } 2>/dev/null; exec "$@"`, 'sh',
  ];
}

export function buildShellArgs(request: ShellRequest): string[] {
  const { user } = request;
  const bound = request.bind === 'home' ? user.home : request.cwd;
  const inside = request.cwd === bound || request.cwd.startsWith(`${bound}/`);
  const args = [
    ...buildQuietPropagateArgs(),
    'systemd-nspawn', '--quiet',
    `--machine=${request.machine}`,
    `--directory=${request.imagePath}`,
    // A tmpfs over the read-only image: writes outside the bound directory vanish.
    '--volatile=overlay',
    '--register=no', '--keep-unit',
    '--link-journal=no',
    '--bind-ro=/etc/passwd', '--bind-ro=/etc/group',
    `--bind=${bound}`,
    `--user=${user.name}`,
    `--chdir=${inside ? request.cwd : bound}`,
    `--console=${request.interactive ? 'interactive' : 'pipe'}`,
  ];
  if (request.personality) args.push(`--personality=${request.personality}`);
  if (request.term && /^[A-Za-z0-9._+-]{1,64}$/.test(request.term)) args.push(`--setenv=TERM=${request.term}`);
  args.push('--', ...(request.command.length ? request.command : [user.shell, '-l']));
  return args;
}

/** Who asked: the user sudo names, or, for root itself, --user (default root). */
export function invokingUserName(env: NodeJS.ProcessEnv, requested: string | undefined): string {
  const sudoUser = env.SUDO_USER;
  if (sudoUser && sudoUser !== 'root') {
    if (requested && requested !== sudoUser) throw new JobError('--user is for root only: under sudo you run as yourself');
    return sudoUser;
  }
  return requested ?? 'root';
}

export function shellMachineName(user: string, pid: number): string {
  return `shell-${user.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 32)}-${pid}`;
}
