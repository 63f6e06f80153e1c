// The OCI parts that need no registry: configuration, pull policies,
// platforms, credentials, command lines, error verdicts, stage environments.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { jobImageSpecFromEnv, jobVariableFromEnv } from '../../lib/contract.mts';
import { JobError, SystemError } from '../../lib/errors.mts';
import { findCredential, redact, secretsOf, writeAuthFile } from '../../lib/oci/auth.mts';
import { missingAgentTools, stageEnvFor, stageWorkdirFor } from '../../lib/oci/image-config.mts';
import { parsePlatform } from '../../lib/oci/platform.mts';
import { checkOciAllowed, choosePullPolicies } from '../../lib/oci/resolve.mts';
import { parseOciReference } from '../../lib/oci/reference.mts';
import {
  buildInspectArgs, buildPullArgs, buildPushArgs, buildUnpackArgs, classifyRegistryFailure, registryError, skopeoMessage,
} from '../../lib/oci/skopeo.mts';
import { imageKey } from '../../lib/oci/store.mts';
import { buildAgentScript } from '../../lib/job/stage-agent.mts';
import { parseConfigDocument, type Settings } from '../../lib/settings.mts';
import { makeOciBusyboxTree } from '../support/oci-images.mts';

const b64 = (text: string) => Buffer.from(text).toString('base64');

test('the oci section of the configuration, with errors naming file and key', () => {
  assert.deepEqual(parseConfigDocument({
    oci: {
      enabled: true, allowed_registries: ['registry.example.com', '127.0.0.1:*'], pull_policy: 'if-not-present',
      allowed_pull_policies: ['always', 'if-not-present'], insecure_registries: ['127.0.0.1:*'], credentials_file: '/etc/nspawn-runner/auth.json',
      gc_unused_after: '3d', pull_timeout: '30m',
    },
  }, 'f'), {
    oci: {
      enabled: true, allowedRegistries: ['registry.example.com', '127.0.0.1:*'], pullPolicy: ['if-not-present'],
      allowedPullPolicies: ['always', 'if-not-present'], insecureRegistries: ['127.0.0.1:*'], credentialsFile: '/etc/nspawn-runner/auth.json',
      gcUnusedAfterSeconds: 3 * 86400, pullTimeoutSeconds: 1800,
    },
  });
  assert.deepEqual(parseConfigDocument({ oci: { pull_policy: ['always', 'if-not-present'], gc_unused_after: 0 } }, 'f'),
    { oci: { pullPolicy: ['always', 'if-not-present'], gcUnusedAfterSeconds: 0 } });
  const bad: Array<[unknown, RegExp]> = [
    [{ oci: { enabled: 'yes' } }, /f: oci.enabled must be true or false/],
    [{ oci: { pull_policy: 'sometimes' } }, /f: oci.pull_policy must be one of always, if-not-present, never/],
    [{ oci: { pull_policy: [] } }, /oci.pull_policy must be/],
    [{ oci: { credentials_file: 'auth.json' } }, /oci.credentials_file must be an absolute path/],
    [{ oci: { gc_unused_after: '1w' } }, /oci.gc_unused_after must be a duration/],
    [{ oci: { registry: 'x' } }, /unknown key "oci.registry"/],
    [{ oci: [] }, /oci must be a mapping/],
  ];
  for (const [doc, message] of bad) assert.throws(() => parseConfigDocument(doc, 'f'), message);
});

function ociSettings(oci: Partial<Settings['oci']> = {}, allowedImages?: string[]): Settings {
  return {
    allowedImages,
    oci: {
      enabled: true, allowedRegistries: undefined, pullPolicy: ['always'], allowedPullPolicies: undefined, insecureRegistries: [],
      credentialsFile: '/nonexistent', gcUnusedAfterSeconds: 0, pullTimeoutSeconds: 60, ...oci,
    },
  } as Settings;
}

test('pull policies: the runner\'s by default; the job\'s only when allowed', () => {
  assert.deepEqual(choosePullPolicies(ociSettings(), []), ['always']);
  assert.deepEqual(choosePullPolicies(ociSettings({ pullPolicy: ['always', 'if-not-present'] }), []), ['always', 'if-not-present']);
  assert.deepEqual(choosePullPolicies(ociSettings(), ['always']), ['always']);
  const open = ociSettings({ allowedPullPolicies: ['always', 'if-not-present', 'never'] });
  assert.deepEqual(choosePullPolicies(open, ['never']), ['never']);
  assert.deepEqual(choosePullPolicies(open, ['if-not-present', 'always', 'if-not-present']), ['if-not-present', 'always']);
  assert.throws(() => choosePullPolicies(ociSettings(), ['if-not-present']),
    (error: unknown) => error instanceof JobError && /pull_policy if-not-present is not allowed on this runner; allowed: always/.test(error.message));
  assert.throws(() => choosePullPolicies(open, ['sometimes']), /unknown pull_policy "sometimes"/);
});

test('allowed_images applies to OCI references as written and as canonical; allowed_registries to the registry', () => {
  const check = (settings: Settings, text: string) => checkOciAllowed(settings, text, parseOciReference(text));
  check(ociSettings({}, ['node:*']), 'node:20');
  check(ociSettings({}, ['docker.io/library/*']), 'node:20');
  check(ociSettings({}, ['127.0.0.1:*/test/*']), 'docker://127.0.0.1:5000/test/bb:1');
  assert.throws(() => check(ociSettings({}, ['node:*']), 'python:3'), /image "python:3" is not allowed on this runner; allowed: node:\*/);
  check(ociSettings({ allowedRegistries: ['127.0.0.1:*'] }), '127.0.0.1:5000/x');
  assert.throws(() => check(ociSettings({ allowedRegistries: ['127.0.0.1:*'] }), 'node:20'),
    (error: unknown) => error instanceof JobError && /registry docker.io is not allowed on this runner; allowed: 127.0.0.1:\*/.test(error.message));
});

test('platforms: the host\'s is the default, i386 runs on amd64, others are refused', () => {
  assert.equal(parsePlatform(undefined, 'x64'), undefined);
  assert.equal(parsePlatform('linux/amd64', 'x64'), undefined);
  assert.deepEqual(parsePlatform('linux/386', 'x64'), { os: 'linux', architecture: '386' });
  assert.throws(() => parsePlatform('linux/arm64', 'x64'), /platform linux\/arm64 cannot run on this amd64 host/);
  assert.throws(() => parsePlatform('windows/amd64', 'x64'), /machines run Linux/);
  assert.throws(() => parsePlatform('linux/amd64 --x', 'x64'), /invalid platform/);
  assert.equal(imageKey(`sha256:${'a'.repeat(64)}`, { os: 'linux', architecture: '386' }), `sha256-${'a'.repeat(64)}-linux-386`);
});

test('the job\'s image object and variables come from JOB_RESPONSE_FILE first', () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-job-`);
  try {
    const file = `${dir}/job.json`;
    writeFileSync(file, JSON.stringify({
      image: { name: 'node:20', pull_policy: ['if-not-present'], entrypoint: [''], executor_opts: { docker: { platform: 'linux/386', user: 'node' } } },
      variables: [{ key: 'DOCKER_AUTH_CONFIG', value: '{"auths":{}}' }],
    }));
    assert.deepEqual(jobImageSpecFromEnv({ JOB_RESPONSE_FILE: file }),
      { name: 'node:20', pullPolicies: ['if-not-present'], platform: 'linux/386', user: 'node', entrypoint: [''] });
    assert.equal(jobVariableFromEnv('DOCKER_AUTH_CONFIG', { JOB_RESPONSE_FILE: file, CUSTOM_ENV_DOCKER_AUTH_CONFIG: 'other' }), '{"auths":{}}');
    assert.equal(jobVariableFromEnv('DOCKER_AUTH_CONFIG', { CUSTOM_ENV_DOCKER_AUTH_CONFIG: 'env' }), 'env');
    assert.deepEqual(jobImageSpecFromEnv({ CUSTOM_ENV_CI_JOB_IMAGE: 'alpine' }),
      { name: 'alpine', pullPolicies: [], platform: undefined, user: undefined, entrypoint: [] });
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('credentials: the job\'s DOCKER_AUTH_CONFIG first, then the host\'s file; Docker\'s key forms', () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-auth-`);
  try {
    const file = `${dir}/config.json`;
    writeFileSync(file, JSON.stringify({ auths: {
      'https://index.docker.io/v1/': { auth: b64('hub:hubpass') },
      'registry.example.com': { username: 'u', password: 'p4ss' },
      'broken.example.com': { auth: 'not base64 at all' },
    } }));
    const job = JSON.stringify({ auths: { 'registry.example.com': { auth: b64('job:jobpass') } } });
    assert.deepEqual(findCredential('registry.example.com', { jobAuthConfig: job, credentialsFile: file }),
      { registry: 'registry.example.com', auth: b64('job:jobpass'), origin: 'DOCKER_AUTH_CONFIG' });
    assert.deepEqual(findCredential('docker.io', { jobAuthConfig: job, credentialsFile: file }),
      { registry: 'docker.io', auth: b64('hub:hubpass'), origin: file });
    assert.equal(findCredential('registry.example.com', { jobAuthConfig: undefined, credentialsFile: file })!.auth, b64('u:p4ss'));
    assert.equal(findCredential('broken.example.com', { jobAuthConfig: undefined, credentialsFile: file }), undefined);
    assert.equal(findCredential('other.example.com', { jobAuthConfig: job, credentialsFile: `${dir}/missing` }), undefined);
    assert.throws(() => findCredential('x', { jobAuthConfig: '{"auths": "s3cret-in-broken-json', credentialsFile: file }),
      (error: unknown) => error instanceof JobError && /DOCKER_AUTH_CONFIG is not valid JSON/.test(error.message) && !error.message.includes('s3cret'));
    writeFileSync(file, '{');
    assert.throws(() => findCredential('x', { jobAuthConfig: undefined, credentialsFile: file }), (error: unknown) => error instanceof SystemError);

    const credential = { registry: 'r', auth: b64('user:pa55word'), origin: 'test' };
    const path = writeAuthFile(`${dir}/auth.json`, credential);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.throws(() => writeAuthFile(path, credential), /EEXIST/, 'never written over an existing file');
    const message = redact(`failed for user:pa55word, ${b64('user:pa55word')} and pa55word`, secretsOf(credential));
    assert.equal(message, 'failed for [MASKED], [MASKED] and [MASKED]');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('skopeo and umoci command lines: validated values, -- before positionals, credentials only from our file', () => {
  const access = { insecure: false, authFile: undefined, timeoutSeconds: 60 };
  assert.deepEqual(buildInspectArgs('docker://docker.io/library/node:20', access),
    ['skopeo', '--command-timeout=60s', 'inspect', '--raw', '--tls-verify=true', '--no-creds', '--', 'docker://docker.io/library/node:20']);
  assert.deepEqual(buildPullArgs('docker://h:1/a@sha256:x', '/s/layout', 'image',
    { insecure: true, authFile: '/s/auth.json', timeoutSeconds: 5, platform: { os: 'linux', architecture: '386' } }),
  ['skopeo', '--command-timeout=5s', '--override-os=linux', '--override-arch=386', 'copy', '--quiet', '--src-tls-verify=false',
    '--src-authfile=/s/auth.json', '--', 'docker://h:1/a@sha256:x', 'oci:/s/layout:image']);
  assert.deepEqual(buildPushArgs('/s/l', 'image', 'docker://h:1/a:1', '/s/d', access),
    ['skopeo', '--command-timeout=60s', 'copy', '--quiet', '--dest-tls-verify=true', '--dest-no-creds', '--digestfile=/s/d', '--',
      'oci:/s/l:image', 'docker://h:1/a:1']);
  assert.deepEqual(buildUnpackArgs('/s/l', 'image', '/s/tree'), ['umoci', 'raw', 'unpack', '--image=/s/l:image', '--', '/s/tree']);
});

test('registry failures: the job\'s fault when the image or access is wrong, the host\'s otherwise; secrets masked', () => {
  const line = (message: string) => `time="x" level=fatal msg="Error parsing image name \\"docker://h/a:1\\": ${message}"`;
  assert.equal(skopeoMessage(line('reading manifest 1 in h/a: manifest unknown: manifest unknown')), 'reading manifest 1 in h/a: manifest unknown: manifest unknown');
  const cases: Array<[string, string, 'job' | 'system']> = [
    ['reading manifest 1 in h/a: manifest unknown: manifest unknown', 'not-found', 'job'],
    ['reading manifest 1 in h/a: unauthorized: authentication required', 'unauthorized', 'job'],
    ['pinging container registry h: Get \\"http://h/v2/\\": dial tcp h: connect: connection refused', 'unreachable', 'system'],
    ['pinging container registry h: Get \\"https://h/v2/\\": http: server gave HTTP response to HTTPS client', 'insecure', 'system'],
    ['writing blob: happened during read: Digest did not match, expected sha256:1, got sha256:2', 'digest', 'system'],
    ['writing blob: write /s/x: no space left on device', 'other', 'system'],
  ];
  for (const [message, kind, fault] of cases) {
    assert.equal(classifyRegistryFailure(message.replaceAll('\\"', '"')), kind, message);
    assert.equal(registryError('image h/a:1', line(message), [], 'h').kind, fault, message);
  }
  const masked = registryError('image h/a:1', line('unauthorized: bad user:hunter22'), ['hunter22'], 'h');
  assert.doesNotMatch(masked.message, /hunter22/);
});

test('stages get the image\'s Env over ours, its WorkingDir, and the shared gitlab-runner in PATH', () => {
  assert.deepEqual(stageEnvFor(['PATH=/opt/bin:/usr/bin', 'JAVA_HOME=/opt/java', 'EMPTY=', 'no-equals', '=x', 'BAD-NAME=1', 'NUL=a\0b']), [
    'PATH=/opt/bin:/usr/bin:/usr/local/bin', 'HOME=/root', 'USER=root', 'LOGNAME=root', 'LANG=C.UTF-8', 'container=systemd-nspawn',
    'JAVA_HOME=/opt/java', 'EMPTY=',
  ]);
  assert.equal(stageEnvFor([]).find((entry) => entry.startsWith('PATH=')), 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  assert.equal(stageWorkdirFor('/work/dir'), '/work/dir');
  assert.equal(stageWorkdirFor(''), '/');
  assert.equal(stageWorkdirFor('relative'), '/');
  const script = buildAgentScript({ env: ['PATH=/a', 'GREETING=it\'s "quoted" $HOME `x`'], workdir: '/work dir' });
  assert.match(script, /exec env -i NSPAWN_RUNNER_AGENT=1 PATH=\/a 'GREETING=it'\\''s "quoted" \$HOME `x`' \/bin\/sh "\$0" "\$@"/);
  assert.match(script, /^mkdir -p '\/work dir' 2>\/dev\/null$/m);
  assert.match(script, /\/\*\) \[ -x "\$shell" \] \|\| shell=\/bin\/sh ;;/);
});

test('an image without the stage agent\'s programs is named at prepare, symlinks resolved inside the tree', () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-tools-`);
  try {
    const tree = makeOciBusyboxTree(`${dir}/tree`);
    assert.deepEqual(missingAgentTools(tree), []);
    assert.deepEqual(missingAgentTools(tree, ['PATH=/opt/bin']), ['setsid', 'mkfifo'], 'looked up in the stages\' PATH');
    for (const tool of ['setsid', 'mkfifo']) rmSync(`${tree}/bin/${tool}`);
    assert.deepEqual(missingAgentTools(tree), ['setsid', 'mkfifo']);
    rmSync(`${tree}/bin/sh`);
    rmSync(`${tree}/bin/env`);
    assert.deepEqual(missingAgentTools(tree), ['/bin/sh', 'env', 'setsid', 'mkfifo']);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
