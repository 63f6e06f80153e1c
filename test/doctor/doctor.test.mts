// doctor: the findings as tables, and the real command on a deliberately
// broken set-up (missing binary, bad config key, missing default image,
// btrfs forced on a filesystem that is not btrfs) and on a working one.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { isBtrfs } from '../../lib/btrfs.mts';
import { findProgram } from '../../lib/doctor/context.mts';
import { nspawnFinding } from '../../lib/doctor/host-checks.mts';
import { blocksJobs, error, formatFindings, ok, warning, wrap, type Finding } from '../../lib/doctor/report.mts';
import { isDynamicElf } from '../../lib/doctor/tool-checks.mts';
import { makeBusyboxImage } from '../support/images.mts';
import { runner } from '../support/runner.mts';

const limits = { cpuWeight: 50, memoryHigh: '30%', memoryMax: '40%', tasksMax: 16384 };

test('systemd versions: what each lacks of the features jobs use', () => {
  const cases: Array<[number, boolean, Finding['status'], RegExp]> = [
    [239, false, 'error', /too old: jobs need --console=pipe/],
    [247, false, 'warning', /without MemoryMax= .*; --suppress-sync \(250\)/],
    [249, true, 'error', /private_users: true needs idmapped binds/],
    [249, false, 'warning', /without --suppress-sync/],
    [252, true, 'ok', /every feature used is there/],
  ];
  for (const [version, privateUsers, status, finding] of cases) {
    const result = nspawnFinding(version, { privateUsers, limits });
    assert.equal(result.status, status, `systemd ${version}`);
    assert.match(result.finding, finding);
  }
});

test('the table: status, check and finding columns, the fix below; errors decide the verdict', () => {
  const findings = [ok('a', 'fine'), warning('bb', 'word '.repeat(30).trim(), 'do this'), error('c', 'broken', 'apt install x')];
  const text = formatFindings(findings, 60);
  assert.match(text, /^STATUS {3}CHECK {2}FINDING \/ FIX$/m);
  assert.match(text, /^ok {7}a {6}fine$/m);
  assert.match(text, /^ {16}fix: apt install x$/m);
  assert.ok(text.split('\n').every((line) => line.length <= 60), text);
  assert.match(text, /1 error\(s\), 1 warning\(s\): jobs cannot run/);
  assert.equal(blocksJobs(findings), true);
  assert.equal(blocksJobs(findings.slice(0, 2)), false);
  assert.deepEqual(wrap('aa bb cc', 5), ['aa bb', 'cc']);
});

test('a dynamically linked gitlab-runner is told from a static one', () => {
  assert.equal(isDynamicElf('/bin/busybox'), false, 'busybox-static');
  assert.equal(isDynamicElf(process.execPath), true);
  assert.equal(isDynamicElf('/etc/passwd'), undefined);
});

interface Report {
  ok: boolean;
  findings: Finding[];
}

describe('doctor on a real host', () => {
  const work = mkdtempSync(`${tmpdir()}/nsr-doctor-`);
  /** A PATH with only what bin/nspawn-runner itself needs, and debootstrap: no systemd-nspawn. */
  const bareBin = `${work}/bin`;
  before(() => {
    mkdirSync(bareBin);
    for (const program of ['node', 'sh', 'readlink', 'dirname', 'debootstrap']) {
      const path = findProgram(program, process.env.PATH!);
      if (path) symlinkSync(path, `${bareBin}/${program}`);
    }
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const doctor = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; report: Report; stdout: string }> => {
    const result = await runner([...args, 'doctor', '--json', '--runner-config', `${work}/config.toml`], { env });
    return { code: result.code, report: JSON.parse(result.stdout) as Report, stdout: result.stdout };
  };
  const find = (report: Report, check: string): Finding[] => report.findings.filter((finding) => finding.check === check);

  test('a broken set-up: each fault is named with its fix, and the exit status says jobs are blocked', async () => {
    const state = `${work}/broken`;
    mkdirSync(state);
    writeFileSync(`${work}/broken.conf`, 'backend: btrfs\ndefault_image: trixie\nkeep_faild: 30m\n');
    writeFileSync(`${work}/config.toml`, [
      '[[runners]]', 'name = "ci"', 'executor = "custom"', '[runners.custom]',
      'prepare_exec = "/opt/nspawn-runner/bin/nspawn-runner"', 'prepare_args = ["prepare"]',
      'run_exec = "/opt/nspawn-runner/bin/nspawn-runner"', 'run_args = ["run"]',
      'cleanup_exec = "/opt/nspawn-runner/bin/nspawn-runner"', 'cleanup_args = ["clean"]', '',
    ].join('\n'));
    const { code, report } = await doctor(['--root', state, '--config', `${work}/broken.conf`], { PATH: bareBin });
    assert.equal(code, 1);
    assert.equal(report.ok, false);

    const [nspawn] = find(report, 'systemd-nspawn');
    assert.equal(nspawn?.status, 'error');
    assert.match(nspawn!.finding, /not installed: no machine can start/);
    assert.equal(nspawn!.fix, 'apt install systemd-container');

    const [config] = find(report, 'configuration');
    assert.equal(config?.status, 'error');
    assert.match(config!.finding, /broken\.conf: unknown key "keep_faild"/);
    assert.match(config!.fix!, /README\.md, "Configuration"/);

    if (!isBtrfs(work)) {
      const [storage] = find(report, 'state directory');
      assert.equal(storage?.status, 'error');
      assert.match(storage!.finding, /backend btrfs needs the state directory .* on btrfs/);
      assert.match(storage!.fix!, /set backend: overlay or tmpfs/);
    }

    const [image] = find(report, 'default image');
    assert.equal(image?.status, 'error');
    assert.match(image!.finding, /trixie \(default_image in the configuration\) does not exist/);
    assert.equal(image!.fix, 'nspawn-runner chroot-create --suite trixie trixie');
    assert.equal(find(report, 'images')[0]?.status, 'error', 'no image at all');

    const [runnerConfig] = find(report, 'config.toml');
    assert.equal(runnerConfig?.status, 'error');
    assert.match(runnerConfig!.finding, /cleanup_args do not name the command "cleanup"/);
  });

  test('a working set-up: no error, exit status 0, and the default image really starts', async () => {
    const state = `${work}/working`;
    mkdirSync(state);
    makeBusyboxImage(`${state}/busybox`);
    writeFileSync(`${work}/working.conf`, 'backend: overlay\ndefault_image: busybox\n' +
      'limits: {cpu_weight: null, memory_high: null, memory_max: null, tasks_max: null}\n');
    rmSync(`${work}/config.toml`, { force: true });
    const { code, report } = await doctor(['--root', state, '--config', `${work}/working.conf`]);
    assert.deepEqual(report.findings.filter((finding) => finding.status === 'error'), []);
    assert.equal(code, 0);
    assert.match(find(report, 'default image')[0]!.finding, /busybox \(default_image in the configuration\): a machine of it starts/);
    assert.match(find(report, 'configuration')[0]!.finding, /is valid; it sets backend, default_image, limits/);
    assert.equal(find(report, 'config.toml')[0]?.status, 'warning');

    const table = await runner(['--root', state, '--config', `${work}/working.conf`, 'doctor', '--runner-config', `${work}/config.toml`]);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^ok {7}default image/m);
    assert.match(table.stdout, /^no errors, \d+ warning\(s\): jobs can run/m);
  });
});
