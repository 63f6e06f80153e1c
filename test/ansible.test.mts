import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildAnsibleConfig, buildChrootWrapper, buildInventory, buildPlaybookArgs } from '../lib/ansible.mts';
import { buildImageShellArgs } from '../lib/nspawn.mts';

test('the chroot wrapper runs each command in systemd-nspawn, without registering', () => {
  assert.equal(buildChrootWrapper(), [
    '#!/bin/sh',
    '# Written by nspawn-runner: ansible\'s chroot connection runs its commands through this.',
    'tree="$1"',
    'shift',
    'exec systemd-nspawn --quiet --console=pipe --register=no --keep-unit --link-journal=no --directory="$tree" -- "$@"',
    '',
  ].join('\n'));
  assert.match(buildChrootWrapper('x86'), /--link-journal=no --personality=x86 --directory="\$tree" -- "\$@"/);
});

test('inventory, config and argv', () => {
  const run = { playbook: '/etc/nspawn-runner/sid.yaml', tree: '/s/.images/sid/v1', image: 'sid' };
  assert.deepEqual(buildInventory(run, '/tmp/w/nspawn-chroot'), {
    all: {
      hosts: {
        '/s/.images/sid/v1': {
          ansible_connection: 'community.general.chroot',
          ansible_chroot_exe: '/tmp/w/nspawn-chroot',
          ansible_python_interpreter: '/usr/bin/python3',
          nspawn_runner_image: 'sid',
        },
      },
    },
  });
  assert.match(buildAnsibleConfig('/tmp/w'), /^\[defaults\]\ninventory = \/tmp\/w\/inventory\.json\nlocal_tmp = \/tmp\/w\/tmp\n/);
  assert.deepEqual(buildPlaybookArgs('/etc/nspawn-runner/sid.yaml'), ['ansible-playbook', '--', '/etc/nspawn-runner/sid.yaml']);
  assert.throws(() => buildPlaybookArgs('sid.yaml'), /absolute/);
});

test('chroot-login argv: a terminal gets an interactive console, a command gets a pipe', () => {
  const cases: Array<[Parameters<typeof buildImageShellArgs>, string[]]> = [
    [['/s/v', { console: 'interactive' }], ['systemd-nspawn', '--quiet', '--console=interactive', '--register=no', '--keep-unit', '--link-journal=no', '--directory=/s/v']],
    [['/s/v', { console: 'pipe', personality: 'x86' }, ['apt-get', 'install', '-y', 'make']],
      ['systemd-nspawn', '--quiet', '--console=pipe', '--register=no', '--keep-unit', '--link-journal=no', '--personality=x86', '--directory=/s/v',
        '--', 'apt-get', 'install', '-y', 'make']],
  ];
  for (const [args, argv] of cases) assert.deepEqual(buildImageShellArgs(...args), argv);
});
