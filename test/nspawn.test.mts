import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildNspawnArgs, escapeColons, namesPath, type NspawnOptions } from '../lib/nspawn.mts';
import { overlayArgs } from '../lib/storage/overlay.mts';
import { buildEnterArgs, buildScriptCommand } from '../lib/stage.mts';

const base: NspawnOptions = {
  machine: 'run-1',
  storageArgs: ['--directory=/img'],
  boot: false,
  register: false,
  binds: [],
  systemdVersion: 252,
  network: 'host',
  privateUsers: false,
};

test('nspawn argv for a direct host keeps a reaper at PID 1 and a keep-alive at PID 2', () => {
  assert.deepEqual(buildNspawnArgs(base), [
    'systemd-nspawn', '--quiet', '--machine=run-1', '--directory=/img', '--link-journal=no',
    '--register=no', '--keep-unit', '--suppress-sync=yes',
    '--console=pipe', '--as-pid2', '--', 'sleep', 'infinity',
  ]);
});

test('nspawn argv variations', () => {
  const cases: Array<[Partial<NspawnOptions>, string[], string[]]> = [
    [{ systemdVersion: 249 }, [], ['--suppress-sync=yes']],
    [{ boot: true, register: true }, ['--boot', '--notify-ready=yes', '--kill-signal=SIGKILL', '--register=yes'], ['--as-pid2', '--register=no', '--']],
    [{ personality: 'x86' }, ['--personality=x86'], []],
    [{ network: 'private' }, ['--private-network'], ['--network-veth']],
    [{ network: 'veth' }, ['--network-veth'], ['--private-network']],
    [{ network: 'zone:ci' }, ['--network-zone=ci'], ['--private-network']],
    [{ privateUsers: true }, ['--private-users=pick', '--private-users-ownership=auto'], []],
    [{ binds: [{ source: '/a:b', target: '/c', readOnly: true }, { source: '/d', target: '/d', readOnly: false }] },
      ['--bind-ro=/a\\:b:/c', '--bind=/d:/d'], []],
  ];
  for (const [change, present, absent] of cases) {
    const argv = buildNspawnArgs({ ...base, ...change });
    for (const flag of present) assert.ok(argv.includes(flag), `${flag} in ${argv.join(' ')}`);
    for (const flag of absent) assert.ok(!argv.includes(flag), `${flag} not in ${argv.join(' ')}`);
  }
});

test('paths with colons are escaped for --overlay and --bind', () => {
  assert.equal(escapeColons('/var/lib/a:b'), '/var/lib/a\\:b');
  assert.equal(escapeColons('/x\\y'), '/x\\\\y');
  assert.deepEqual(overlayArgs('/state/img', '/state/.jobs/1/upper'),
    ['--directory=/state/img', '--overlay=/state/img:/state/.jobs/1/upper:/']);
  // cleanup and gc find a job's machine by the job directory its command line names.
  const commandLine = ['systemd-nspawn', ...overlayArgs('/st:ate/img', '/st:ate/.jobs/1/upper')].join(' ');
  assert.ok(namesPath(commandLine, '/st:ate/.jobs/1/'));
  assert.ok(!namesPath(commandLine, '/st:ate/.jobs/10/'));
});

test('stages enter every namespace of the machine leader', () => {
  assert.deepEqual(buildEnterArgs(4242, ['/bin/bash', '/dev/fd/3']),
    ['nsenter', '--target=4242', '--all', '--root', '--wd', '--', '/bin/bash', '/dev/fd/3']);
  assert.deepEqual(buildEnterArgs(4242, ['/bin/bash'], 'x86'),
    ['setarch', 'i686', '--', 'nsenter', '--target=4242', '--all', '--root', '--wd', '--', '/bin/bash']);
});

test('the stage script is copied from fd 3 into the machine, then run by the shell', () => {
  const [sh, flag, program, shell] = buildScriptCommand('/bin/bash');
  assert.deepEqual([sh, flag, shell], ['/bin/sh', '-c', '/bin/bash']);
  assert.match(program!, /cat <&3 >"\/run\/nspawn-runner\/script\.\$\$" && exec "\$0" "\/run\/nspawn-runner\/script\.\$\$" 3<&-/);
});
