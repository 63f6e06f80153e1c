// A job's services: on a systemd host (the booted test host of
// systemd-host.mts). The job's machine boots its image's systemd in the
// job's pod (one network namespace, pasta for the way out); each service runs
// in a machine of its own under its own unit, registered with machined. All
// of the job's units share one slice under machine.slice, which carries the
// job's limits (lib/host/systemd-slice.mts). The services come in
// JOB_RESPONSE_FILE, as gitlab-runner hands them over.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { makeBusyboxImage } from '../support/images.mts';
import { innerRoot, innerScripts, nothingLeft, SystemdTestHost } from '../support/systemd-host.mts';

const unit = (machine: string): string => `nspawn-runner-${machine}.service`;
const slice = (jobId: string): string => `machine-nspawn\\x2drunner\\x2drun\\x2d${jobId}.slice`;

/** Two busybox httpd services, the second one saying so on its output first. */
const twoServices = [
  { name: 'busybox', alias: 'web', command: ['httpd', '-f', '-v', '-p', '8080', '-h', '/srv/www'], ports: [{ number: 8080, protocol: 'http' }] },
  { name: 'busybox', alias: 'second,other', command: ['sh', '-c', 'echo second service up; exec httpd -f -v -p 8081 -h /etc'], ports: [{ number: 8081 }] },
];

describe('services on a systemd host (booted test host)', () => {
  const host = new SystemdTestHost();
  /** The job as gitlab-runner writes it for prepare: JOB_RESPONSE_FILE. */
  const jobResponse = (jobId: string, services: unknown[]): Record<string, string> => {
    writeFileSync(`${host.scripts}/job-${jobId}.json`, JSON.stringify({ id: Number(jobId), services, variables: [] }));
    return { JOB_RESPONSE_FILE: `${innerScripts}/job-${jobId}.json` };
  };

  before(async () => {
    await host.boot();
    makeBusyboxImage(`${host.state}/busybox`);
    mkdirSync(`${host.state}/busybox/srv/www`, { recursive: true });
    writeFileSync(`${host.state}/busybox/srv/www/index.html`, 'hello from the web service\n');
    writeFileSync(`${host.scripts}/limits.conf`, 'limits:\n  cpu_weight: 30\n  memory_max: 1G\n  tasks_max: 4000\n');
  });
  after(() => host.dispose());

  test('two services, each a registered machine in the job\'s slice, which has the job\'s limits; reached by alias; logs kept; cleanup leaves nothing', async () => {
    const config = ['--config', `${innerScripts}/limits.conf`];
    const prepared = await host.prepare('501', undefined, config, jobResponse('501', twoServices));
    assert.equal(prepared.code, 0, prepared.stderr);
    assert.match(prepared.stderr, /machine run-501 on image bookworm \(overlay storage, systemd host\)/);
    assert.doesNotMatch(prepared.stderr, /WARNING/, 'both services listen before the first stage');

    const machines = (await host.exec(['machinectl', 'list', '--no-legend'])).stdout;
    for (const machine of ['run-501', 'run-501-s0', 'run-501-s1']) {
      assert.match(machines, new RegExp(`^${machine}\\s+container\\s+systemd-nspawn`, 'm'));
      assert.equal((await host.exec(['machinectl', 'show', '--property=Unit', '--value', '--', machine])).stdout.trim(), unit(machine));
      assert.equal(await host.unitProperty(unit(machine), 'Slice'), slice('501'));
      // The limits are the slice's: the units have none of their own.
      assert.equal(await host.unitProperty(unit(machine), 'MemoryMax'), 'infinity');
      assert.equal(await host.unitProperty(unit(machine), 'CPUWeight'), '[not set]');
    }
    assert.equal(await host.unitProperty(slice('501'), 'ActiveState'), 'active');
    assert.equal(await host.unitProperty(slice('501'), 'CPUWeight'), '30');
    assert.equal(await host.unitProperty(slice('501'), 'MemoryMax'), String(1024 ** 3));
    assert.equal(await host.unitProperty(slice('501'), 'TasksMax'), '4000');
    const leader = (await host.exec(['machinectl', 'show', '--property=Leader', '--value', '--', 'run-501-s0'])).stdout.trim();
    const cgroup = (await host.exec(['cat', `/proc/${leader}/cgroup`])).stdout;
    assert.match(cgroup, new RegExp(`^0::/machine\\.slice/${slice('501').replaceAll('\\', '\\\\').replaceAll('.', '\\.')}/${unit('run-501-s0').replaceAll('.', '\\.')}/`, 'm'));

    const stage = await host.stage('501', 'build_script', [
      'systemctl is-system-running',
      'getent hosts web other',
      'python3 -c "import urllib.request as u; print(u.urlopen(\'http://web:8080/\').read().decode(), end=\'\')"',
      'python3 -c "import urllib.request as u; print(u.urlopen(\'http://second:8081/os-release\').read().decode(), end=\'\')"',
    ].join('\n'));
    assert.equal(stage.code, 0, stage.stderr);
    assert.match(stage.stdout, /^running$/m, 'the job\'s machine boots in the pod, nothing failed');
    assert.match(stage.stdout, /^127\.0\.0\.1\s+web /m);
    assert.match(stage.stdout, /^hello from the web service$/m);
    assert.match(stage.stdout, /^ID=busybox$/m);

    // Each service's output, in its directory (StandardOutput=append: of its unit).
    const logOf = (index: number): string => readFileSync(`${host.state}/.jobs/501/services/${index}/nspawn.log`, 'utf8');
    assert.match(logOf(0), /response:200/);
    assert.match(logOf(1), /^second service up$/m);
    assert.match(logOf(1), /response:200/);
    assert.match((await host.runner(['status'])).stdout, /^501\tbusybox\toverlay\tsystemd\t-\tservice:running\trun-501-s1\tsecond,other,busybox$/m);

    const cleaned = await host.cleanup('501', config);
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.deepEqual(await host.inventory(), nothingLeft);
  });

  test('without limits the slice is made by the first unit, and cleanup still stops it', async () => {
    writeFileSync(`${host.scripts}/no-limits.conf`, 'limits:\n  cpu_weight: null\n  memory_high: null\n  memory_max: null\n  tasks_max: null\n');
    const config = ['--config', `${innerScripts}/no-limits.conf`];
    const prepared = await host.prepare('502', undefined, config, jobResponse('502', twoServices.slice(0, 1)));
    assert.equal(prepared.code, 0, prepared.stderr);
    assert.equal(await host.unitProperty(unit('run-502-s0'), 'Slice'), slice('502'));
    assert.deepEqual((await host.inventory()).dropIns, []);
    assert.equal((await host.cleanup('502', config)).code, 0);
    assert.deepEqual(await host.inventory(), nothingLeft);
  });

  test('gc cleans up an orphaned job with a service: its machines, its slice and its drop-ins, pasta', async () => {
    const prepared = await host.runnerWithDeadOwner(['prepare', '--id', '503', 'bookworm'], jobResponse('503', twoServices.slice(0, 1)));
    assert.equal(prepared.code, 0, prepared.stderr);
    assert.equal(await host.unitProperty(slice('503'), 'ActiveState'), 'active');
    assert.match((await host.inventory()).processes.join('\n'), /pasta/);
    assert.match((await host.runner(['status'])).stdout, /^503\t.*\torphaned\trun-503\t-$/m);
    const gc = await host.runner(['gc', '--json']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual(JSON.parse(gc.stdout).jobs, ['503']);
    assert.deepEqual(await host.inventory(), nothingLeft);
  });

  test('gc stops the machines, the slice and pasta of a job whose directory is gone', async () => {
    assert.equal((await host.prepare('504', undefined, [], jobResponse('504', twoServices.slice(0, 1)))).code, 0);
    // The job's bookkeeping moved away behind the runner's back (a restore, a careless admin).
    // Deleted, pasta would quit by itself: it watches its namespace file.
    assert.equal((await host.exec(['mv', '--', `${innerRoot}/.jobs/504`, `${innerRoot}/moved-504`])).code, 0);
    const gc = await host.runner(['gc', '--json']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual(JSON.parse(gc.stdout).strayMachines.sort(), ['run-504', 'run-504-s0']);
    assert.match(gc.stderr, /stopped machine-nspawn\\x2drunner\\x2drun\\x2d504\.slice: its job directory is gone/);
    assert.match(gc.stderr, /stopped pasta of \/var\/lib\/nspawn-runner\/\.jobs\/504\/netns: its job directory is gone/);
    // What was moved is the admin's to remove, its pod's mount with it.
    assert.equal((await host.exec(['sh', '-c', `umount ${innerRoot}/moved-504/netns && rm -rf ${innerRoot}/moved-504`])).code, 0);
    assert.deepEqual(await host.inventory(), nothingLeft);
  });

  test('nothing is left on this machine once the test host is gone', async () => {
    await host.dispose();
    assert.ok(!existsSync(host.work));
  });
});
