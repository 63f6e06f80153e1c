import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { parseElfHeader, personalityFor, readElfIdentity, resolveInside } from '../../lib/image/personality.mts';

/** The first 20 bytes of an ELF file: magic, class, data (endianness), version, padding, type, machine. */
function elfHeader(bits: 32 | 64, machine: number, little = true): Uint8Array {
  const bytes = new Uint8Array(20);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, bits === 32 ? 1 : 2, little ? 1 : 2, 1]);
  bytes[16] = 3; // ET_DYN
  if (little) bytes.set([machine & 0xff, machine >> 8], 18);
  else bytes.set([machine >> 8, machine & 0xff], 18);
  return bytes;
}

test('ELF headers: class and machine', () => {
  assert.deepEqual(parseElfHeader(elfHeader(32, 3)), { bits: 32, machine: 3 });
  assert.deepEqual(parseElfHeader(elfHeader(64, 62)), { bits: 64, machine: 62 });
  assert.deepEqual(parseElfHeader(elfHeader(64, 22, false)), { bits: 64, machine: 22 });
  assert.equal(parseElfHeader(new TextEncoder().encode('#!/bin/sh\nexec busybox sh "$@"\n')), undefined);
  assert.equal(parseElfHeader(new Uint8Array(4)), undefined);
});

test('only i386 binaries on an x86-64 host need a personality', () => {
  const cases: Array<[Uint8Array | undefined, string, string | undefined]> = [
    [elfHeader(32, 3), 'x64', 'x86'],
    [elfHeader(64, 62), 'x64', undefined],
    [elfHeader(32, 40), 'x64', undefined], // armhf: runs under binfmt, nspawn has no personality for it
    [elfHeader(32, 3), 'arm64', undefined],
    [undefined, 'x64', undefined],
  ];
  for (const [header, hostArch, personality] of cases) {
    assert.equal(personalityFor(header && parseElfHeader(header), hostArch), personality);
  }
});

describe('paths inside an image', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(`${tmpdir()}/nsr-elf-`);
    mkdirSync(`${root}/usr/bin`, { recursive: true });
    writeFileSync(`${root}/usr/bin/dash`, elfHeader(32, 3));
    symlinkSync('usr/bin', `${root}/bin`); // merged /usr, as Debian has it
    symlinkSync('dash', `${root}/usr/bin/sh`);
    symlinkSync('/usr/bin/dash', `${root}/usr/bin/abs`); // absolute: must stay inside the image
    symlinkSync('../../usr/./bin/dash', `${root}/usr/bin/rel`);
    symlinkSync('loop', `${root}/usr/bin/loop`);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('symlinks resolve as if the image were "/"', () => {
    assert.equal(resolveInside(root, '/bin/sh'), `${root}/usr/bin/dash`);
    assert.equal(resolveInside(root, '/bin/abs'), `${root}/usr/bin/dash`);
    assert.equal(resolveInside(root, '/bin/rel'), `${root}/usr/bin/dash`);
    assert.equal(resolveInside(root, '/../../bin/sh'), `${root}/usr/bin/dash`);
    assert.equal(resolveInside(root, '/bin/loop'), undefined);
    assert.equal(resolveInside(root, '/bin/missing'), undefined);
    assert.deepEqual(readElfIdentity(resolveInside(root, '/bin/sh')!), { bits: 32, machine: 3 });
  });
});
