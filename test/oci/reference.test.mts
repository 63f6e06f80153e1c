import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JobError } from '../../lib/errors.mts';
import { formatReference, parseOciReference, registryMatches, transportReference } from '../../lib/oci/reference.mts';

const digest = `sha256:${'ab'.repeat(32)}`;

test('references are read as docker and podman read them, Docker Hub short names included', () => {
  const cases: Array<[string, string]> = [
    ['node:20', 'docker.io/library/node:20'],
    ['alpine', 'docker.io/library/alpine:latest'],
    ['python:3.12-slim', 'docker.io/library/python:3.12-slim'],
    ['team/tool', 'docker.io/team/tool:latest'],
    ['docker.io/library/debian:bookworm', 'docker.io/library/debian:bookworm'],
    ['index.docker.io/library/debian', 'docker.io/library/debian:latest'],
    ['registry.example.com/team/builder:2024-10', 'registry.example.com/team/builder:2024-10'],
    ['127.0.0.1:5000/test/bb:1', '127.0.0.1:5000/test/bb:1'],
    ['localhost/x', 'localhost/x:latest'],
    ['localhost:5000/a/b/c', 'localhost:5000/a/b/c:latest'],
    [`alpine@${digest}`, `docker.io/library/alpine@${digest}`],
    [`alpine:3.19@${digest}`, `docker.io/library/alpine:3.19@${digest}`],
    ['docker://alpine:3.19', 'docker.io/library/alpine:3.19'],
    ['my_org/a__b.c-d:Tag_1.x', 'docker.io/my_org/a__b.c-d:Tag_1.x'],
  ];
  for (const [text, canonical] of cases) assert.equal(formatReference(parseOciReference(text)), canonical, text);
  assert.deepEqual(parseOciReference('registry.example.com:5000/team/builder:1'),
    { registry: 'registry.example.com:5000', repository: 'team/builder', tag: '1', digest: undefined });
});

test('skopeo fetches by digest when there is one, never tag and digest together', () => {
  assert.equal(transportReference(parseOciReference('node:20')), 'docker://docker.io/library/node:20');
  assert.equal(transportReference(parseOciReference(`node:20@${digest}`)), `docker://docker.io/library/node@${digest}`);
  assert.equal(transportReference(parseOciReference('node:20'), digest), `docker://docker.io/library/node@${digest}`);
});

test('malformed and hostile references are refused as the job\'s fault, saying why', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['docker://', /empty/],
    ['-rf', /bad path component "-rf"/],
    ['--help', /bad path component/],
    ['x/-y', /bad path component "-y"/],
    ['../etc', /bad registry "\.\."/],
    ['a/../b', /bad path component "\.\."/],
    ['/etc/passwd', /bad path component ""/],
    ['a//b', /bad path component ""/],
    ['Node:20', /bad path component "Node"/],
    ['node:-x', /bad tag "-x"/],
    ['node:.x', /bad tag/],
    [`node:${'x'.repeat(129)}`, /bad tag/],
    ['node@sha256:abc', /digest must be sha256/],
    [`node@md5:${'a'.repeat(32)}`, /digest must be sha256/],
    ['a b', /space/],
    ['a\0b', /control/],
    ['a\nb', /control/],
    ['$(reboot)', /bad path component/],
    ["it's", /quote/],
    ['-registry.example.com/x', /bad registry "-registry.example.com"/],
    ['registry.example.com:port/x', /bad registry/],
    [`${'a'.repeat(300)}`, /longer than 255/],
    ['x'.repeat(600), /longer than 512/],
  ];
  for (const [text, reason] of cases) {
    assert.throws(() => parseOciReference(text), (error: unknown) => error instanceof JobError && reason.test(error.message), JSON.stringify(text));
  }
});

test('registry globs', () => {
  assert.ok(registryMatches('127.0.0.1:5000', ['127.0.0.1:*']));
  assert.ok(registryMatches('docker.io', ['registry.example.com', 'docker.io']));
  assert.ok(!registryMatches('docker.io', ['*.example.com']));
  assert.ok(!registryMatches('evil.example.com.attacker.net', ['*.example.com']), 'globs are anchored at both ends');
  assert.ok(!registryMatches('registryXexample.com', ['registry.example.com']), 'dots are literal');
});
