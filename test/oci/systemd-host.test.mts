// OCI images on a systemd host (the booted test host of systemd-host.mts).
// OCI images have no systemd to boot, so their machines run the stage agent
// as nspawn's payload under the job's transient unit, registered with
// machined like booted ones. The image is pulled on this side into the state
// directory the test host shares (the test host has no skopeo); inside, the
// job finds it by pull_policy if-not-present. A service of such an image
// runs beside such a job, in its pod and its slice (test/services/ has more).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { buildTestImages, type TestImages } from '../support/oci-images.mts';
import { Registry } from '../support/registry.mts';
import { runner } from '../support/runner.mts';
import { innerScripts, nothingLeft, SystemdTestHost } from '../support/systemd-host.mts';


describe('OCI images on a systemd host (booted test host)', () => {
  const host = new SystemdTestHost({ bindDebianImage: false });
  let registry: Registry;
  let images: TestImages;
  let outside: string;

  before(async () => {
    registry = await Registry.start();
    images = buildTestImages(registry);
    outside = mkdtempSync(`${tmpdir()}/nsr-oci-systemd-`);
    writeFileSync(`${outside}/pull.conf`, 'oci:\n  enabled: true\n  insecure_registries: ["127.0.0.1:*"]\n');
    await host.boot();
    for (const image of [images.env, images.busybox]) {
      const pulled = await runner(['--root', host.state, '--config', `${outside}/pull.conf`, 'oci-pull', image.reference]);
      assert.equal(pulled.code, 0, pulled.stderr);
    }
    writeFileSync(`${host.scripts}/oci.conf`, 'oci:\n  enabled: true\n  pull_policy: if-not-present\n');
  });

  after(async () => {
    await host.dispose();
    await registry?.close();
    if (outside) rmSync(outside, { recursive: true, force: true });
  });

  test('a machine of an OCI image runs its stage agent as payload under its unit, with the image\'s Env', async () => {
    const config = ['--config', `${innerScripts}/oci.conf`];
    const prepared = await host.prepare('351', images.env.reference, config);
    assert.equal(prepared.code, 0, prepared.stderr);
    assert.match(prepared.stderr, new RegExp(`machine run-351 on image ${images.env.reference} \\(sha256:[a-f0-9]+\\) \\(overlay storage, systemd host\\)`));
    assert.doesNotMatch(prepared.stderr, /pulling/);
    assert.match((await host.exec(['machinectl', 'list', '--no-legend'])).stdout, /^run-351\s+container\s+systemd-nspawn/m);
    assert.equal(await host.unitProperty('nspawn-runner-run-351.service', 'ActiveState'), 'active');
    const stage = await host.stage('351', 'build_script', 'echo "JAVA_HOME=$JAVA_HOME"; pwd; hello; cat /proc/1/comm', {}, config);
    assert.equal(stage.code, 0, stage.stderr);
    assert.match(stage.stdout, /^JAVA_HOME=\/opt\/java$/m);
    assert.match(stage.stdout, /^\/work\/dir$/m);
    assert.match(stage.stdout, /^hello from the image's "Env" in \/opt\/java$/m);
    assert.doesNotMatch(stage.stdout, /^systemd$/m, 'not booted: PID 1 is nspawn\'s stub init');
    const cleaned = await host.cleanup('351', config);
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.deepEqual(await host.inventory(), nothingLeft);
  });

  test('a service of an OCI image beside a job of one: reached by its alias, in the job\'s slice; cleanup leaves nothing', async () => {
    const config = ['--config', `${innerScripts}/oci.conf`];
    const services = [{ name: images.busybox.reference, alias: 'web', command: ['httpd', '-f', '-v', '-p', '8080', '-h', '/etc'], ports: [{ number: 8080 }] }];
    writeFileSync(`${host.scripts}/job-352.json`, JSON.stringify({ id: 352, services, variables: [] }));
    const prepared = await host.prepare('352', images.env.reference, config, { JOB_RESPONSE_FILE: `${innerScripts}/job-352.json` });
    assert.equal(prepared.code, 0, prepared.stderr);
    assert.doesNotMatch(prepared.stderr, /WARNING/);
    assert.match((await host.exec(['machinectl', 'list', '--no-legend'])).stdout, /^run-352-s0\s+container\s+systemd-nspawn/m);
    const slice = 'machine-nspawn\\x2drunner\\x2drun\\x2d352.slice';
    for (const unit of ['nspawn-runner-run-352.service', 'nspawn-runner-run-352-s0.service']) assert.equal(await host.unitProperty(unit, 'Slice'), slice);
    assert.equal(await host.unitProperty(slice, 'CPUWeight'), '50', 'the default limits, on the slice');
    const stage = await host.stage('352', 'build_script', 'wget -qO- http://web:8080/os-release', {}, config);
    assert.equal(stage.code, 0, stage.stderr);
    assert.match(stage.stdout, /^ID=busybox$/m);
    assert.match(readFileSync(`${host.state}/.jobs/352/services/0/nspawn.log`, 'utf8'), /response:200/);
    const cleaned = await host.cleanup('352', config);
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.deepEqual(await host.inventory(), nothingLeft);
  });
});
