#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// The single entry point: `nspawn-runner [global options] COMMAND [args]`,
// with the original Python nspawn-runner's command names, so its users switch
// by changing one path in config.toml.
import { writeAll } from '../lib/log.mts';

const commands: Record<string, { summary: string; file: string }> = {
  'gitlab-config': { summary: 'config_exec: print the executor configuration JSON', file: 'config' },
  prepare: { summary: 'prepare_exec: start a machine for a CI job', file: 'prepare' },
  run: { summary: 'run_exec: run a stage script inside the job\'s machine', file: 'run' },
  cleanup: { summary: 'cleanup_exec: stop the job\'s machine and remove its traces', file: 'cleanup' },
  toml: { summary: 'print a [[runners]] section for /etc/gitlab-runner/config.toml', file: 'toml' },
  'chroot-create': { summary: 'bootstrap a Debian image, then apply its playbook', file: 'chroot-create' },
  'chroot-login': { summary: 'a root shell (or a command) in an image, to change it by hand', file: 'chroot-login' },
  'chroot-list': { summary: 'list images: storage, size, maintenance, playbook, jobs (--json)', file: 'chroot-list' },
  'chroot-remove': { summary: 'remove an image and its versions', file: 'chroot-remove' },
  'chroot-maintenance': { summary: 'create, recreate or update images from their playbooks', file: 'chroot-maintenance' },
  'chroot-push': { summary: 'export an image as an OCI image to a registry', file: 'chroot-push' },
  'oci-pull': { summary: 'pull and unpack an OCI image ahead of its jobs', file: 'oci-pull' },
  'oci-list': { summary: 'list pulled OCI images: references, digest, size, last use (--json)', file: 'oci-list' },
  shell: { summary: 'a throw-away copy of an image for a person, as themselves (via sudo)', file: 'shell' },
  'ssh-units': { summary: 'write socket/service units: an ephemeral machine per ssh connection', file: 'ssh-units' },
  'ssh-session': { summary: 'one ssh connection\'s machine (started by the ssh-units service)', file: 'ssh-session' },
  status: { summary: 'list the jobs and their machines', file: 'status' },
  gc: { summary: 'remove what crashed jobs left behind', file: 'gc' },
  exec: { summary: 'run a project\'s .gitlab-ci.yml jobs here, each in a fresh machine (--list to show them)', file: 'exec' },
  metrics: { summary: 'print Prometheus metrics: jobs, stage durations, images, gc removals', file: 'metrics' },
  doctor: { summary: 'check the host and this installation; say what blocks jobs and how to fix it', file: 'doctor' },
  'sample-job': { summary: 'run a sample CI job through every stage, as gitlab-runner would', file: 'sample-job' },
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
// Each command is its own script, imported from source: a stage loads only
// its own modules, not every command's, and an edit takes effect at once.
await import(`./${commands[name]!.file}.mts`);
