// The single entry point: `nspawn-runner [global options] COMMAND [args]`,
// with the original Python nspawn-runner's command names, so its users switch
// by changing one path in config.toml.
import { writeAll } from '../lib/log.mts';

const commands: Record<string, { summary: string; load: () => Promise<unknown> }> = {
  'gitlab-config': { summary: 'config_exec: print the executor configuration JSON', load: () => import('./config.mts') },
  prepare: { summary: 'prepare_exec: start a machine for a CI job', load: () => import('./prepare.mts') },
  run: { summary: 'run_exec: run a stage script inside the job\'s machine', load: () => import('./run.mts') },
  cleanup: { summary: 'cleanup_exec: stop the job\'s machine and remove its traces', load: () => import('./cleanup.mts') },
  toml: { summary: 'print a [[runners]] section for /etc/gitlab-runner/config.toml', load: () => import('./toml.mts') },
  'chroot-create': { summary: 'bootstrap a Debian image, then apply its playbook', load: () => import('./chroot-create.mts') },
  'chroot-login': { summary: 'a root shell (or a command) in an image, to change it by hand', load: () => import('./chroot-login.mts') },
  'chroot-list': { summary: 'list images: storage, size, maintenance, playbook, jobs (--json)', load: () => import('./chroot-list.mts') },
  'chroot-remove': { summary: 'remove an image and its versions', load: () => import('./chroot-remove.mts') },
  'chroot-maintenance': { summary: 'create, recreate or update images from their playbooks', load: () => import('./chroot-maintenance.mts') },
  shell: { summary: 'a throw-away copy of an image for a person, as themselves (via sudo)', load: () => import('./shell.mts') },
  'ssh-units': { summary: 'write socket/service units: an ephemeral machine per ssh connection', load: () => import('./ssh-units.mts') },
  'ssh-session': { summary: 'one ssh connection\'s machine (started by the ssh-units service)', load: () => import('./ssh-session.mts') },
  status: { summary: 'list the jobs and their machines', load: () => import('./status.mts') },
  gc: { summary: 'remove what crashed jobs left behind', load: () => import('./gc.mts') },
  'sample-job': { summary: 'run a sample CI job through every stage, as gitlab-runner would', load: () => import('./sample-job.mts') },
};
const aliases: Record<string, string> = { config: 'gitlab-config' };
// Global options that take a value: their value is not the command name.
const valued = new Set(['--root', '--config', '--backend', '--host']);

const argv = process.argv.slice(2);
let index = 0;
while (index < argv.length && argv[index]!.startsWith('-')) index += valued.has(argv[index]!) ? 2 : 1;
const given = argv[index];
const name = given && (aliases[given] ?? given);

if (!name || !(name in commands)) {
  const rows = Object.entries(commands).map(([command, { summary }]) => `  ${command.padEnd(20)} ${summary}`);
  const text = `usage: nspawn-runner [-v|--verbose] [--debug] COMMAND [args]\n\ncommands:\n${rows.join('\n')}\n\n` +
    'Run "nspawn-runner COMMAND --help" for a command\'s options.\n';
  const asked = argv.includes('-h') || argv.includes('--help');
  writeAll(asked ? 1 : 2, given ? `nspawn-runner: unknown command "${given}"\n\n${text}` : text);
  process.exit(asked && !given ? 0 : 2);
}
process.argv = [process.argv[0]!, name, ...argv.slice(0, index), ...argv.slice(index + 1)];
await commands[name]!.load();
