import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkImageAllowed, globToRegExp, imageNameFromReference, validateImageName } from '../../lib/image/resolve.mts';
import type { Settings } from '../../lib/settings.mts';
import { JobError } from '../../lib/errors.mts';

test('image references map to image names the way the original does', () => {
  const cases: Array<[string, string]> = [
    ['bookworm', 'bookworm'],
    ['base:bookworm', 'bookworm'],
    ['debian:sid', 'sid'],
    ['registry.example.com:5000/team/debian:trixie', 'trixie'],
    ['team/ci-image', 'ci-image'],
    ['bullseye-i386', 'bullseye-i386'],
    ['img@sha256:abc', 'img'],
  ];
  for (const [reference, name] of cases) assert.equal(imageNameFromReference(reference), name, reference);
});

test('hostile or broken image names are refused with a reason', () => {
  const cases: Array<[string, RegExp]> = [
    ['../x', /bad path component/],
    ['/etc', /bad path component/],
    ['a/../../etc', /bad path component/],
    ['.hidden', /starts with "\."/],
    ['-rf', /starts with "-"/],
    ['base:.hidden', /starts with "\."/],
    ['a\0b', /NUL/],
    ['', /empty/],
    ['x'.repeat(300), /longer than/],
    ['with space', /only letters/],
    ['a..b', /contains "\.\."/],
    ['$(reboot)', /only letters/],
  ];
  for (const [reference, reason] of cases) {
    assert.throws(() => imageNameFromReference(reference), (error: unknown) =>
      error instanceof JobError && reason.test(error.message), JSON.stringify(reference));
  }
});

test('validateImageName refuses "/" outright', () => {
  assert.throws(() => validateImageName('a/b'), /contains "\/"/);
  assert.equal(validateImageName('bookworm'), 'bookworm');
});

test('allowed_images globs', () => {
  const settings = { allowedImages: ['bookworm', 'debian-*', 'sid?'] } as Settings;
  for (const name of ['bookworm', 'debian-12', 'debian-', 'sid1']) assert.equal(checkImageAllowed(settings, name), name);
  for (const name of ['trixie', 'bookworm2', 'xdebian-1', 'sid']) {
    assert.throws(() => checkImageAllowed(settings, name), /is not allowed on this runner; allowed: bookworm, debian-\*, sid\?/);
  }
  assert.equal(checkImageAllowed({ allowedImages: undefined } as Settings, 'any'), 'any');
  assert.equal(globToRegExp('a.b*').test('aXb'), false, 'dots are literal');
});
