import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildBootstrapArgs, resolveCreateOptions, type BootstrapOptions, type CreateSources } from '../lib/bootstrap.mts';
import { SystemError } from '../lib/errors.mts';

const base: BootstrapOptions = { suite: 'bookworm', packages: [], bootstrapper: 'debootstrap' };
const include = '--include=bash,git,ca-certificates,systemd,dbus,python3';

test('bootstrap argv', () => {
  const cases: Array<[Partial<BootstrapOptions>, boolean, string[]]> = [
    [{}, false, ['debootstrap', '--variant=minbase', include, 'bookworm', '/t']],
    [{}, true, ['eatmydata', 'debootstrap', '--variant=minbase', include, 'bookworm', '/t']],
    [{ arch: 'i386', mirror: 'http://mirror.example.org/debian', packages: ['make', 'git'] }, false,
      ['debootstrap', '--variant=minbase', `${include},make`, '--arch=i386', 'bookworm', '/t', 'http://mirror.example.org/debian']],
    [{ bootstrapper: 'mmdebstrap', components: ['main', 'contrib'] }, false,
      ['mmdebstrap', '--variant=minbase', include, '--format=directory', '--components=main,contrib', 'bookworm', '/t']],
  ];
  for (const [change, eatmydata, argv] of cases) assert.deepEqual(buildBootstrapArgs({ ...base, ...change }, '/t', eatmydata), argv);
});

test('values that would become options are refused', () => {
  for (const change of [{ suite: '--foreign' }, { arch: '-x' }, { mirror: '--keyring=/x' }, { packages: ['-o'] }] as Partial<BootstrapOptions>[]) {
    assert.throws(() => buildBootstrapArgs({ ...base, ...change }, '/t', false), /invalid/);
  }
});

test('creation settings: command line, then playbook, then the previous creation, then defaults', () => {
  const cases: Array<[CreateSources, string | undefined, Partial<BootstrapOptions>]> = [
    [{}, 'unstable', { suite: 'unstable', packages: [], bootstrapper: 'debootstrap' }],
    [{ playbook: { suite: 'bookworm', arch: 'i386', packages: ['make'] } }, 'unstable',
      { suite: 'bookworm', arch: 'i386', packages: ['make'], bootstrapper: 'debootstrap' }],
    [{ commandLine: { suite: 'sid', packages: [] }, playbook: { suite: 'bookworm', packages: ['make'], bootstrapper: 'mmdebstrap' } }, 'unstable',
      { suite: 'sid', packages: [], bootstrapper: 'mmdebstrap' }],
    [{ playbook: { mirror: 'http://mirror.example.org/debian' }, recorded: { suite: 'trixie', components: ['main', 'contrib'], packages: ['gcc'], bootstrapper: 'debootstrap' } }, undefined,
      { suite: 'trixie', mirror: 'http://mirror.example.org/debian', components: ['main', 'contrib'], packages: ['gcc'], bootstrapper: 'debootstrap' }],
  ];
  for (const [sources, fallback, expected] of cases) assert.deepEqual(resolveCreateOptions(sources, fallback), expected);
});

test('maintenance never guesses a suite, and playbook values are checked like command-line ones', () => {
  assert.throws(() => resolveCreateOptions({ playbook: { arch: 'i386' } }, undefined),
    (error: unknown) => error instanceof SystemError && /no suite/.test(error.message) && /nspawn_runner_chroot_suite/.test(error.hint ?? ''));
  assert.throws(() => resolveCreateOptions({ playbook: { suite: 'sid', mirror: '--keyring=/x' } }, undefined), /invalid mirror/);
});
