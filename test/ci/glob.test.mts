// Path globs (doublestar) and the walk that never follows symlinks.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import { matchPaths, pathGlobToRegExp, staticPrefix } from '../../lib/ci/glob.mts';

const cases: Array<[pattern: string, path: string, matches: boolean]> = [
  ['*.yml', 'a.yml', true],
  ['*.yml', 'ci/a.yml', false],
  ['ci/*.yml', 'ci/a.yml', true],
  ['ci/**/*.yml', 'ci/a.yml', true],
  ['ci/**/*.yml', 'ci/x/y/a.yml', true],
  ['**/*.o', 'a.o', true],
  ['**/*.o', 'src/lib/a.o', true],
  ['**/*.o', 'src/lib/a.c', false],
  ['dist/**', 'dist/a/b', true],
  ['dist/**', 'dist', false],
  ['./build/out', 'build/out', true],
  ['/configs/*.yml', 'configs/x.yml', true],
  ['file?.txt', 'file1.txt', true],
  ['file?.txt', 'file10.txt', false],
  ['[ab].txt', 'a.txt', true],
  ['[!ab].txt', 'a.txt', false],
  ['[!ab].txt', 'c.txt', true],
  ['*.{js,ts}', 'x.ts', true],
  ['*.{js,ts}', 'x.rb', false],
  ['a\\*b', 'a*b', true],
  ['a\\*b', 'axb', false],
  ['a.b', 'axb', false],
];

for (const [pattern, path, matches] of cases) {
  test(`${pattern} ${matches ? 'matches' : 'does not match'} ${path}`, () => {
    assert.equal(pathGlobToRegExp(pattern).test(path), matches);
  });
}

test('the static prefix of a glob is where a walk starts', () => {
  assert.equal(staticPrefix('ci/jobs/*.yml'), 'ci/jobs');
  assert.equal(staticPrefix('**/*.o'), '');
  assert.equal(staticPrefix('a/b*/c'), 'a');
});

const dir = mkdtempSync(`${tmpdir()}/nsr-glob-`);
after(() => rmSync(dir, { recursive: true, force: true }));

test('matching walks below the static prefix, reports symlinks and never follows them', () => {
  mkdirSync(`${dir}/src/sub`, { recursive: true });
  writeFileSync(`${dir}/src/a.c`, '');
  writeFileSync(`${dir}/src/sub/b.c`, '');
  mkdirSync(`${dir}/outside`);
  writeFileSync(`${dir}/outside/secret.c`, '');
  symlinkSync(`${dir}/outside`, `${dir}/src/link`);
  assert.deepEqual(matchPaths(dir, 'src/**/*.c').map((entry) => entry.path), ['src/a.c', 'src/sub/b.c']);
  assert.deepEqual(matchPaths(dir, 'src/*').map((entry) => [entry.path, entry.kind]), [['src/a.c', 'file'], ['src/link', 'symlink'], ['src/sub', 'dir']]);
  // A literal path through a symlink is not inside the tree.
  assert.deepEqual(matchPaths(dir, 'src/link/secret.c'), []);
  assert.deepEqual(matchPaths(dir, '../outside/secret.c'), []);
  assert.deepEqual(matchPaths(dir, 'src/a.c').map((entry) => entry.path), ['src/a.c']);
});
