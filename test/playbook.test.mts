import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { SystemError } from '../lib/errors.mts';
import { findPlaybook, listPlaybookNames, parsePlaybook, readPlaybook, type PlaybookVars } from '../lib/playbook.mts';
import type { Settings } from '../lib/settings.mts';

const play = (vars: unknown) => [{ hosts: 'all', vars, tasks: [] }];

test('playbook vars become image settings', () => {
  const cases: Array<[unknown, PlaybookVars]> = [
    [play({ nspawn_runner_chroot_suite: 'bookworm', nspawn_runner_maint_recreate: true }), { suite: 'bookworm', recreate: true }],
    [play({
      nspawn_runner_chroot_mirror: 'http://mirror.example.org/debian',
      nspawn_runner_chroot_arch: 'i386',
      nspawn_runner_chroot_packages: ['make', 'gcc'],
      nspawn_runner_chroot_components: 'main, contrib non-free',
      nspawn_runner_chroot_bootstrapper: 'mmdebstrap',
    }), { mirror: 'http://mirror.example.org/debian', arch: 'i386', packages: ['make', 'gcc'], components: ['main', 'contrib', 'non-free'], bootstrapper: 'mmdebstrap' }],
    // an unquoted number is still a suite name; null means unset; other vars are the playbook's own
    [play({ nspawn_runner_chroot_suite: 12, nspawn_runner_chroot_arch: null, app_port: 80 }), { suite: '12' }],
    // ansible also takes vars as a list of mappings
    [play([{ nspawn_runner_chroot_suite: 'sid' }, { nspawn_runner_maint_recreate: false }]), { suite: 'sid', recreate: false }],
  ];
  for (const [data, vars] of cases) {
    const parsed = parsePlaybook(data, 'p.yaml');
    assert.deepEqual(parsed.vars, vars);
    assert.deepEqual(parsed.warnings, []);
    assert.equal(parsed.runnable, true);
  }
});

test('odd playbooks give one clear warning each, never a crash', () => {
  const cases: Array<[unknown, RegExp, boolean]> = [
    [null, /^p\.yaml: the playbook is empty$/, false],
    [[], /^p\.yaml: the playbook is empty$/, false],
    [{ hosts: 'all' }, /^p\.yaml: not a playbook: a playbook is a YAML list of plays, this is a mapping$/, false],
    ['just text', /not a playbook: .* this is string "just text"/, false],
    [[{ hosts: 'all', tasks: [] }], /^p\.yaml: the first play has no vars: image settings come from the command line and defaults$/, true],
    [['oops'], /the first play is string "oops", not a mapping/, true],
    [play('text'), /vars of the first play is string "text", not a mapping/, true],
    [play({ nspawn_runner_chroot_suit: 'sid' }), /unknown variable nspawn_runner_chroot_suit ignored \(known: nspawn_runner_chroot_suite, /, true],
    [play({ nspawn_runner_chroot_suite: '{{ suite }}' }), /nspawn_runner_chroot_suite is a template, which only ansible can expand: ignored/, true],
    [[...play({}), { hosts: 'all', vars: { nspawn_runner_chroot_suite: 'sid' } }], /play 2 sets nspawn_runner_\* variables, but only the first play's vars are read/, true],
  ];
  for (const [data, warning, runnable] of cases) {
    const parsed = parsePlaybook(data, 'p.yaml');
    assert.equal(parsed.warnings.length, 1, JSON.stringify(data));
    assert.match(parsed.warnings[0]!, warning);
    assert.equal(parsed.runnable, runnable, JSON.stringify(data));
  }
});

test('wrongly typed nspawn_runner_* values are errors naming file and key', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ nspawn_runner_maint_recreate: 'sometimes' }, /p\.yaml: nspawn_runner_maint_recreate must be true or false, not string "sometimes"/],
    [{ nspawn_runner_chroot_packages: [1, 2] }, /nspawn_runner_chroot_packages must be a list of names, not a list/],
    [{ nspawn_runner_chroot_bootstrapper: 'cdebootstrap' }, /must be debootstrap or mmdebstrap, not string "cdebootstrap"/],
    [{ nspawn_runner_chroot_suite: ['sid'] }, /nspawn_runner_chroot_suite must be a string, not a list/],
    [{ nspawn_runner_chroot_mirror: '' }, /nspawn_runner_chroot_mirror is empty/],
  ];
  for (const [vars, message] of cases) {
    assert.throws(() => parsePlaybook(play(vars), 'p.yaml'), (error: unknown) =>
      error instanceof SystemError && message.test(error.message) && /Playbook variables/.test(error.hint ?? ''), JSON.stringify(vars));
  }
});

describe('playbook files', () => {
  let dir: string;
  let settings: Settings;
  before(() => {
    dir = mkdtempSync(`${tmpdir()}/nsr-playbooks-`);
    mkdirSync(`${dir}/etc`);
    mkdirSync(`${dir}/state`);
    settings = { root: `${dir}/state`, configDir: `${dir}/etc` } as Settings;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('found in the config directory first, then the state directory, .yaml before .yml', () => {
    writeFileSync(`${dir}/state/a.yaml`, '[]');
    writeFileSync(`${dir}/etc/a.yml`, '[]');
    writeFileSync(`${dir}/state/b.yml`, '[]');
    writeFileSync(`${dir}/state/b.yaml`, '[]');
    writeFileSync(`${dir}/etc/.hidden.yaml`, '[]');
    writeFileSync(`${dir}/etc/bad name.yaml`, '[]');
    writeFileSync(`${dir}/etc/nspawn-runner.conf`, '');
    assert.equal(findPlaybook(settings, 'a'), `${dir}/etc/a.yml`);
    assert.equal(findPlaybook(settings, 'b'), `${dir}/state/b.yaml`);
    assert.equal(findPlaybook(settings, 'c'), undefined);
    const ignored: string[] = [];
    assert.deepEqual(listPlaybookNames(settings, (path) => ignored.push(path)), ['a', 'b']);
    assert.deepEqual(ignored, [`${dir}/etc/bad name.yaml`]);
  });

  test('read as ansible reads YAML: 1.1 booleans and vault values', async () => {
    writeFileSync(`${dir}/etc/v.yaml`, [
      '- hosts: all',
      '  vars:',
      '    nspawn_runner_maint_recreate: yes',
      '    nspawn_runner_chroot_suite: trixie',
      '    secret: !vault |',
      '      $ANSIBLE_VAULT;1.1;AES256',
      '      6162',
      '  tasks: []',
    ].join('\n'));
    const playbook = await readPlaybook(`${dir}/etc/v.yaml`);
    assert.deepEqual(playbook.vars, { recreate: true, suite: 'trixie' });
    writeFileSync(`${dir}/etc/broken.yaml`, '- hosts: all\n  vars: [unclosed\n');
    await assert.rejects(readPlaybook(`${dir}/etc/broken.yaml`), /broken\.yaml: not valid YAML/);
  });
});
