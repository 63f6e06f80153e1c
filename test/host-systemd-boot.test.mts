import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { bootArguments, bootBinds, bootMasks, createBootFiles, logindDropIn, skippedGenerators } from '../lib/host/systemd-boot.mts';
import type { NetworkChoice } from '../lib/settings.mts';

test('the machine\'s systemd: masks on its command line, status lines for errors only', () => {
  assert.deepEqual(bootArguments('private'), [
    'systemd.mask=systemd-journal-flush.service',
    'systemd.mask=systemd-update-utmp.service',
    'systemd.mask=systemd-update-utmp-runlevel.service',
    'systemd.mask=timers.target',
    'systemd.mask=dev-hugepages.mount',
    'systemd.mask=sys-fs-fuse-connections.mount',
    'systemd.show_status=error',
  ]);
});

test('systemd-networkd is masked only where the machine has the host\'s network', () => {
  const networkd = ['systemd-networkd.service', 'systemd-networkd.socket', 'systemd-networkd-wait-online.service'];
  const cases: Array<[NetworkChoice, boolean]> = [['host', true], ['private', false], ['veth', false], ['zone:ci', false]];
  for (const [network, masked] of cases) {
    const masks = bootMasks(network);
    for (const unit of networkd) assert.equal(masks.includes(unit), masked, `${unit} with network ${network}`);
  }
});

test('what a job relies on is never masked or skipped', () => {
  const masks = bootMasks('host');
  for (const unit of ['systemd-journald.service', 'systemd-logind.service', 'dbus.service', 'dbus.socket', 'multi-user.target', 'sysinit.target', 'systemd-tmpfiles-setup.service']) {
    assert.ok(!masks.includes(unit), unit);
  }
  // debug: systemd.wants= (the stage agent) and systemd.mask=; the others: what an image may have set up.
  for (const generator of ['systemd-debug-generator', 'systemd-fstab-generator', 'systemd-sysv-generator', 'systemd-rc-local-generator']) {
    assert.ok(!(skippedGenerators as readonly string[]).includes(generator), generator);
  }
});

test('skipped generators are empty files, bound over the generator directory of highest priority; logind gets Type=simple', () => {
  const jobDir = mkdtempSync(`${tmpdir()}/nsr-boot-`);
  try {
    createBootFiles(jobDir);
    const generators = `${jobDir}/boot/generators`;
    assert.deepEqual(readdirSync(generators).sort(), [...skippedGenerators].sort());
    // Empty and not executable: systemd reads an empty file as a mask (systemd.generator(7)).
    for (const name of skippedGenerators) assert.equal(statSync(`${generators}/${name}`).size, 0);
    assert.equal(readFileSync(`${jobDir}/boot/logind.conf`, 'utf8'), logindDropIn);
    assert.match(logindDropIn, /^\[Service\]\nType=simple\n$/);
    assert.deepEqual(bootBinds(jobDir), [
      { source: generators, target: '/run/systemd/system-generators', readOnly: true },
      { source: `${jobDir}/boot/logind.conf`, target: '/run/systemd/system/systemd-logind.service.d/nspawn-runner.conf', readOnly: true },
    ]);
  } finally {
    rmSync(jobDir, { recursive: true, force: true });
  }
});
