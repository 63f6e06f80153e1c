import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildBootstrapArgs, type BootstrapOptions } from '../lib/bootstrap.mts';

const base: BootstrapOptions = { suite: 'bookworm', packages: [], bootstrapper: 'debootstrap' };
const include = '--include=bash,git,ca-certificates,systemd,dbus,python3';

test('bootstrap argv', () => {
  const cases: Array<[Partial<BootstrapOptions>, boolean, string[]]> = [
    [{}, false, ['debootstrap', '--variant=minbase', include, 'bookworm', '/t']],
    [{}, true, ['eatmydata', 'debootstrap', '--variant=minbase', include, 'bookworm', '/t']],
    [{ arch: 'i386', mirror: 'http://deb.debian.org/debian', packages: ['make', 'git'] }, false,
      ['debootstrap', '--variant=minbase', `${include},make`, '--arch=i386', 'bookworm', '/t', 'http://deb.debian.org/debian']],
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
