// The resource line at the end of a job: figures from a machine's cgroup v2
// files where it has one, CPU time from /proc on a direct host, and what
// could not be measured said so. (A booted systemd host, with the machine's
// unit cgroup, is in systemd-host.test.mts.)
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { describeCgroupHost, formatResourceLine, measureJob, readCgroupResources } from '../../lib/job/resources.mts';
import { StateFixture } from '../support/fixture.mts';

const mib = 1024 * 1024;

test('a cgroup v2 directory: memory.peak, memory.events and cpu.stat make the line', () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-cgroup-`);
  try {
    writeFileSync(`${dir}/cpu.stat`, 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n');
    const cpuOnly = readCgroupResources(dir);
    assert.deepEqual([cpuOnly.cpuSeconds, cpuOnly.peakMemoryBytes, cpuOnly.oomKills], [2.5, null, null]);
    assert.equal(formatResourceLine(cpuOnly), `resources used by the job's machine: CPU time 2.5 s (cgroup ${dir}); ` +
      'not measured: peak memory and OOM kills: the machine\'s cgroup has no memory controller');
    writeFileSync(`${dir}/memory.peak`, `${96 * mib}\n`);
    writeFileSync(`${dir}/memory.events`, 'low 0\nhigh 3\nmax 1\noom 1\noom_kill 1\noom_group_kill 0\n');
    const all = readCgroupResources(dir);
    assert.equal(all.unmeasured, undefined);
    assert.equal(formatResourceLine(all), `resources used by the job's machine: peak memory 96 MiB, CPU time 2.5 s, OOM kills 1 (cgroup ${dir})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('this host\'s cgroups are described, and say what a resource line can show', () => {
  const host = describeCgroupHost();
  assert.match(host.summary, /^(cgroup v2 \(controllers: .*\)|cgroup v1.*|no cgroup file system mounted)$/);
  assert.match(host.measures, /CPU time/);
  assert.equal(formatResourceLine({ peakMemoryBytes: null, cpuSeconds: null, oomKills: null, source: '/proc' }),
    'resources used by the job\'s machine: nothing could be measured');
});

describe('the resource line of a job on a direct host', () => {
  let state: StateFixture;
  before(async () => {
    state = await StateFixture.withBusybox();
  });
  after(() => state?.dispose());

  test('the last stage prints CPU time from the machine\'s processes and says what a direct host cannot measure; status --json has the figures', async () => {
    assert.equal((await state.prepare('res-1')).code, 0);
    // 64 MiB in the shell's memory, and some work; a background process that outlives its stage.
    const build = await state.stage('res-1', 'build_script', [
      'x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo "${#x} bytes held"',
      'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done',
      'sleep 1000 &',
    ].join('\n'));
    assert.equal(build.code, 0, build.stderr);
    assert.match(build.stdout, /^67108864 bytes held$/m);
    assert.doesNotMatch(build.stderr, /resources used/, 'only the last stage says it');

    const [row] = JSON.parse((await state.run(['status', '--json'])).stdout) as Array<{ resources: { cpuSeconds: number; peakMemoryBytes: null; unmeasured: string } }>;
    assert.ok(row!.resources.cpuSeconds > 0);
    assert.equal(row!.resources.peakMemoryBytes, null);

    const last = await state.stage('res-1', 'cleanup_file_variables', 'true');
    assert.equal(last.code, 0, last.stderr);
    const line = /^nspawn-runner: resources used by the job's machine: CPU time (\d+\.\d) s \(\/proc\); not measured: (.*)$/m.exec(last.stderr);
    assert.ok(line, last.stderr);
    assert.ok(Number(line[1]) > 0, 'the stages\' CPU time, reaped by the agent, counts');
    assert.equal(line[2], 'peak memory and OOM kills: a direct host gives the machine no cgroup of its own');
    assert.equal((await state.cleanup('res-1')).code, 0);
  });

  test('the figures are summed over the machine\'s PID namespace', () => {
    const record = { unit: undefined };
    const own = measureJob(record, process.pid);
    assert.ok(own.cpuSeconds !== null && own.cpuSeconds > 0, 'this host\'s namespace has spent CPU time');
    assert.equal(own.source, '/proc');
  });
});
