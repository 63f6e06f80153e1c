import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { detectHostName, missingForSystemd } from '../../lib/host/select.mts';

test('host detection: systemd needs both /run/systemd/system and the system bus', () => {
  const root = mkdtempSync(`${tmpdir()}/nsr-host-`);
  try {
    assert.equal(detectHostName(root), 'direct');
    assert.match(missingForSystemd(root)!, /systemd is not PID 1/);
    mkdirSync(`${root}/run/systemd/system`, { recursive: true });
    assert.equal(detectHostName(root), 'direct');
    assert.match(missingForSystemd(root)!, /no system bus/);
    mkdirSync(`${root}/run/dbus`);
    writeFileSync(`${root}/run/dbus/system_bus_socket`, '');
    assert.equal(detectHostName(root), 'systemd');
    assert.equal(missingForSystemd(root), undefined);
  } finally {
    rmSync(root, { recursive: true });
  }
});
