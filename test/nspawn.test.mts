import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildNspawnArgs, escapeColons, namesPath, type NspawnOptions } from '../lib/nspawn.mts';
import { overlayArgs } from '../lib/storage/overlay.mts';
import { agentBinds, agentPayload, agentScript, agentUnit } from '../lib/stage-agent.mts';
import { checkShell, stageToken } from '../lib/stage.mts';

const base: NspawnOptions = {
  machine: 'run-1',
  storageArgs: ['--directory=/img'],
  boot: false,
  payload: agentPayload(false),
  register: false,
  binds: [],
  systemdVersion: 252,
  network: 'host',
};

test('nspawn argv for a direct host keeps a reaper at PID 1 and the stage agent at PID 2', () => {
  assert.deepEqual(buildNspawnArgs(base), [
    'systemd-nspawn', '--quiet', '--machine=run-1', '--directory=/img', '--link-journal=no',
    '--register=no', '--keep-unit', '--suppress-sync=yes',
    '--console=pipe', '--as-pid2', '--', '/bin/sh', '/run/nspawn-runner-agent.sh', '/run/nspawn-runner',
  ]);
});

test('a booted machine gets the agent from its own systemd', () => {
  const argv = buildNspawnArgs({ ...base, boot: true, register: true, payload: agentPayload(true) });
  assert.deepEqual(argv.slice(-2), ['--', 'systemd.wants=nspawn-runner-agent.service']);
  assert.match(agentUnit, /^ExecStart=\/bin\/sh \/run\/nspawn-runner-agent\.sh \/run\/nspawn-runner$/m);
  assert.match(agentUnit, /^KillMode=process$/m);
});

test('nspawn argv variations', () => {
  const cases: Array<[Partial<NspawnOptions>, string[], string[]]> = [
    [{ systemdVersion: 249 }, [], ['--suppress-sync=yes']],
    [{ boot: true, register: true }, ['--boot', '--notify-ready=yes', '--kill-signal=SIGKILL', '--register=yes'], ['--as-pid2', '--register=no', '--console=pipe']],
    [{ personality: 'x86' }, ['--personality=x86'], []],
    [{ network: 'private' }, ['--private-network'], ['--network-veth']],
    [{ network: 'veth' }, ['--network-veth'], ['--private-network']],
    [{ network: 'zone:ci' }, ['--network-zone=ci'], ['--private-network']],
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

test('the agent gets its io directory read-write, idmapped under private users, and its files read-only', () => {
  const binds = (boot: boolean, privateUsers: boolean): string[] => buildNspawnArgs({ ...base, binds: agentBinds('/s/.jobs/1', boot, privateUsers) })
    .filter((arg) => arg.startsWith('--bind'));
  assert.deepEqual(binds(false, false), ['--bind=/s/.jobs/1/io:/run/nspawn-runner', '--bind-ro=/s/.jobs/1/agent.sh:/run/nspawn-runner-agent.sh']);
  assert.deepEqual(binds(true, true), ['--bind=/s/.jobs/1/io:/run/nspawn-runner:idmap', '--bind-ro=/s/.jobs/1/agent.sh:/run/nspawn-runner-agent.sh',
    '--bind-ro=/s/.jobs/1/agent.service:/run/systemd/system/nspawn-runner-agent.service']);
});

test('stage tokens and shells are plain words: nothing the agent could read as more', () => {
  assert.equal(stageToken('build_script', 'ab12'), 'build_script-ab12');
  assert.equal(stageToken('step_a b/../c', 'ab12'), 'step_a_b____c-ab12');
  assert.equal(checkShell('/bin/bash'), '/bin/bash');
  for (const bad of ['bash -c x', '-x', 'a;b', '', 'a\nb']) assert.throws(() => checkShell(bad), /invalid shell/);
});

test('the agent is POSIX sh and refuses tokens and shells that are not plain words', () => {
  assert.match(agentScript, /case \$token in ''\|\.\*\|\*\[!A-Za-z0-9_.-\]\*\) continue/);
  assert.match(agentScript, /^  setsid "\$shell" "\$io\/\$token\.sh" <\/dev\/null >>"\$io\/output" 2>&1 3<&- &$/m);
  assert.match(agentScript, /exec env -i NSPAWN_RUNNER_AGENT=1 PATH=\S+ HOME=\/root USER=root LOGNAME=root LANG=C.UTF-8 container=systemd-nspawn \/bin\/sh "\$0" "\$@"/);
});
