// The systemd units shipped in contrib/ are valid and run what README.md says.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { executable } from './support/runner.mts';

const contrib = new URL('../contrib/', import.meta.url);
const service = readFileSync(new URL('nspawn-runner-maintenance.service', contrib), 'utf8');
const timer = readFileSync(new URL('nspawn-runner-maintenance.timer', contrib), 'utf8');

test('the maintenance service runs chroot-maintenance once, the timer starts it daily', () => {
  assert.match(service, /^Type=oneshot$/m);
  assert.match(service, /^ExecStart=\/usr\/local\/bin\/nspawn-runner chroot-maintenance$/m);
  assert.match(timer, /^OnCalendar=daily$/m);
  assert.match(timer, /^Persistent=true$/m);
  assert.match(timer, /^WantedBy=timers\.target$/m);
});

test('systemd-analyze verify accepts both units', { skip: spawnSync('systemd-analyze', ['--version']).status !== 0 && 'no systemd-analyze' }, () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-units-`);
  try {
    // setup.sh links /usr/local/bin/nspawn-runner; verify wants an executable there, so point at this checkout.
    writeFileSync(`${dir}/nspawn-runner-maintenance.service`, service.replace('/usr/local/bin/nspawn-runner', executable));
    writeFileSync(`${dir}/nspawn-runner-maintenance.timer`, timer);
    const result = spawnSync('systemd-analyze', ['verify', `${dir}/nspawn-runner-maintenance.service`, `${dir}/nspawn-runner-maintenance.timer`], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr.trim(), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the metrics service writes the textfile collector\'s file, the timer starts it every minute; both verify', { skip: spawnSync('systemd-analyze', ['--version']).status !== 0 && 'no systemd-analyze' }, () => {
  const metricsService = readFileSync(new URL('nspawn-runner-metrics.service', contrib), 'utf8');
  const metricsTimer = readFileSync(new URL('nspawn-runner-metrics.timer', contrib), 'utf8');
  assert.match(metricsService, /^ExecStart=\/usr\/local\/bin\/nspawn-runner metrics --output \/var\/lib\/prometheus\/node-exporter\/nspawn_runner\.prom$/m);
  assert.match(metricsTimer, /^OnUnitActiveSec=1min$/m);
  const dir = mkdtempSync(`${tmpdir()}/nsr-units-`);
  try {
    writeFileSync(`${dir}/nspawn-runner-metrics.service`, metricsService.replace('/usr/local/bin/nspawn-runner', executable));
    writeFileSync(`${dir}/nspawn-runner-metrics.timer`, metricsTimer);
    const result = spawnSync('systemd-analyze', ['verify', `${dir}/nspawn-runner-metrics.service`, `${dir}/nspawn-runner-metrics.timer`], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr.trim(), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
