import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildAnsibleConfig, buildChrootWrapper, buildInventory, buildPlaybookArgs } from '../../lib/image/ansible.mts';
import { buildImageShellArgs, hostnameFor } from '../../lib/nspawn.mts';

test('the chroot wrapper runs each command in systemd-nspawn, without registering', () => {
  assert.equal(buildChrootWrapper('sid'), [
    '#!/bin/sh',
    '# Written by nspawn-runner: ansible\'s chroot connection runs its commands through this.',
    'tree="$1"',
    'shift',
    'exec systemd-nspawn --quiet --console=pipe --register=no --keep-unit --link-journal=no --machine=sid --directory="$tree" -- "$@"',
    '',
  ].join('\n'));
  assert.match(buildChrootWrapper('old_i386+x', 'x86'), /--machine=old-i386-x --personality=x86 --directory="\$tree" -- "\$@"/);
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

test('image names become host names', () => {
  const cases: Array<[string, string]> = [['bookworm', 'bookworm'], ['sid_i386', 'sid-i386'], ['c++', 'c'], ['x'.repeat(100), 'x'.repeat(63)], ['_', 'image']];
  for (const [image, hostname] of cases) assert.equal(hostnameFor(image), hostname, image);
});

test('chroot-login argv: a terminal gets an interactive console, a command gets a pipe', () => {
  const cases: Array<[Parameters<typeof buildImageShellArgs>, string[]]> = [
    [['/s/v', { console: 'interactive', image: 'sid' }],
      ['systemd-nspawn', '--quiet', '--console=interactive', '--register=no', '--keep-unit', '--link-journal=no', '--machine=sid', '--directory=/s/v']],
    [['/s/v', { console: 'pipe', personality: 'x86' }, ['apt-get', 'install', '-y', 'make']],
      ['systemd-nspawn', '--quiet', '--console=pipe', '--register=no', '--keep-unit', '--link-journal=no', '--personality=x86', '--directory=/s/v',
        '--', 'apt-get', 'install', '-y', 'make']],
  ];
  for (const [args, argv] of cases) assert.deepEqual(buildImageShellArgs(...args), argv);
});
