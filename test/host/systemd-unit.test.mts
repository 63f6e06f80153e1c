import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildSystemdRunArgs, limitProperties, machineOfUnit, runtimeDropInDir, sliceName, unitName, type SystemdRunOptions } from '../../lib/host/systemd-unit.mts';
import type { Limits } from '../../lib/settings.mts';

const base: SystemdRunOptions = {
  unit: 'nspawn-runner-run-7.service',
  description: 'job 7',
  limits: { cpuWeight: 50, memoryHigh: '30%', memoryMax: '40%', tasksMax: 16384 },
  systemdVersion: 252,
  readyTimeoutSeconds: 60,
  nspawnArgs: ['systemd-nspawn', '--machine=run-7', '--boot', '--notify-ready=yes'],
};

test('systemd-run argv: a transient notify service in machine.slice, nspawn after --', () => {
  assert.deepEqual(buildSystemdRunArgs(base), [
    'systemd-run', '--quiet', '--unit=nspawn-runner-run-7.service', '--description=job 7', '--slice=machine.slice', '--collect',
    '--property=Type=notify', '--property=TimeoutStartSec=60s',
    '--property=KillMode=mixed', '--property=Delegate=yes', '--property=SuccessExitStatus=133',
    '--property=RestartForceExitStatus=133', '--property=WatchdogSec=3min',
    '--property=CPUWeight=50', '--property=MemoryHigh=30%', '--property=MemoryMax=40%', '--property=TasksMax=16384',
    '--property=DevicePolicy=closed', '--property=DeviceAllow=/dev/net/tun rwm', '--property=DeviceAllow=char-pts rw',
    '--property=DeviceAllow=/dev/loop-control rw', '--property=DeviceAllow=block-loop rw', '--property=DeviceAllow=block-blkext rw',
    '--property=DeviceAllow=/dev/mapper/control rw', '--property=DeviceAllow=block-device-mapper rw',
    '--', 'systemd-nspawn', '--machine=run-7', '--boot', '--notify-ready=yes',
  ]);
});

test('privileged machines: no device policy, nspawn\'s seccomp filter off', () => {
  const argv = buildSystemdRunArgs({ ...base, allDevices: true, env: { SYSTEMD_SECCOMP: '0' } });
  assert.ok(!argv.some((arg) => arg.includes('Device')));
  assert.ok(argv.indexOf('--setenv=SYSTEMD_SECCOMP=0') < argv.indexOf('--'));
});

test('limits: each one can be switched off, MemoryMax needs systemd 249', () => {
  const cases: Array<[Limits, number, string[]]> = [
    [{}, 252, []],
    [{ cpuWeight: 20 }, 252, ['CPUWeight=20']],
    [{ memoryHigh: '2G', memoryMax: '3G' }, 252, ['MemoryHigh=2G', 'MemoryMax=3G']],
    [{ memoryHigh: '2G', memoryMax: '3G' }, 248, ['MemoryHigh=2G']],
    [{ memoryMax: '40%' }, 249, ['MemoryMax=40%']],
    [{ cpuWeight: undefined, tasksMax: 100 }, 252, ['TasksMax=100']],
  ];
  for (const [limits, version, expected] of cases) {
    assert.deepEqual(limitProperties(limits, version), expected, JSON.stringify({ limits, version }));
  }
  const withoutLimits = buildSystemdRunArgs({ ...base, limits: {} });
  assert.equal(withoutLimits.filter((arg) => /CPUWeight|Memory|TasksMax/.test(arg)).length, 0);
});

test('a unit is named after its machine, apart from systemd-run\'s own run-u<N> names', () => {
  assert.equal(unitName('run-101'), 'nspawn-runner-run-101.service');
  assert.equal(unitName('run-u5'), 'nspawn-runner-run-u5.service');
  assert.equal(machineOfUnit(unitName('run-101')), 'run-101', 'gc and cleanup find machines by their units');
  assert.equal(machineOfUnit('run-u5.service'), undefined);
  assert.equal(machineOfUnit('nspawn-runner-run-7.socket'), undefined);
});

test('a job with services: its units go in its slice, which carries the limits instead of them', () => {
  const argv = buildSystemdRunArgs({ ...base, slice: sliceName('run-7') });
  assert.ok(argv.includes('--slice=machine-nspawn\\x2drunner\\x2drun\\x2d7.slice'));
  assert.ok(!argv.includes('--slice=machine.slice'));
  assert.equal(argv.filter((arg) => /CPUWeight|Memory|TasksMax/.test(arg)).length, 0);
  assert.ok(argv.includes('--property=DevicePolicy=closed'), 'the rest stays the unit\'s');
});

test('a job\'s slice is named after its machine, under machine.slice, its dashes escaped', () => {
  const cases: Array<[string, string]> = [
    ['run-7', 'machine-nspawn\\x2drunner\\x2drun\\x2d7.slice'],
    ['run-a-b', 'machine-nspawn\\x2drunner\\x2drun\\x2da\\x2db.slice'],
    [`run-${'9'.repeat(60)}`, `machine-nspawn\\x2drunner\\x2drun\\x2d${'9'.repeat(60)}.slice`],
  ];
  for (const [machine, expected] of cases) assert.equal(sliceName(machine), expected);
  const long = sliceName(`run-a${'-'.repeat(59)}`);
  assert.ok(long.length <= 255, 'unit names stop at 255 characters');
  assert.match(long, /^machine-nspawn\\x2drunner\\x2d[0-9a-f]{32}\.slice$/);
  assert.equal(runtimeDropInDir(sliceName('run-7')), '/run/systemd/system.control/machine-nspawn\\x2drunner\\x2drun\\x2d7.slice.d');
});
