// The services parts that need no machine: what gitlab-runner hands over,
// host names, commands, environments, the pod's files and command lines.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { JobError } from '../../lib/errors.mts';
import { buildSystemdRunArgs } from '../../lib/host/systemd-unit.mts';
import { buildNspawnArgs } from '../../lib/nspawn.mts';
import { missingWorkdir, planServices, serviceArgv, serviceEnv, serviceMachineName } from '../../lib/services/machines.mts';
import { buildHostsFile, buildPastaArgs } from '../../lib/services/pod.mts';
import { aliasesOf, derivedHostNames, isDebugServices, jobServicesFromEnv, serviceSpecOf } from '../../lib/services/spec.mts';
import { buildPortProbeArgs } from '../../lib/services/wait.mts';
import { loadSettings, parseConfigDocument } from '../../lib/settings.mts';

test('host names derived from a service image, as the Docker executor derives them', () => {
  const cases: Array<[string, string[]]> = [
    ['postgres:16', ['postgres']],
    ['postgres', ['postgres']],
    ['bitnami/redis:7', ['bitnami__redis', 'bitnami-redis']],
    ['registry.example.com/group/tool:1', ['registry.example.com__group__tool', 'registry.example.com-group-tool']],
    ['registry.example.com:5000/group/tool:1', ['registry.example.com__group__tool', 'registry.example.com-group-tool']],
    [`mysql@sha256:${'a'.repeat(64)}`, ['mysql']],
    ['127.0.0.1:5000/svc/httpd:1', ['127.0.0.1__svc__httpd', '127.0.0.1-svc-httpd']],
  ];
  for (const [image, names] of cases) assert.deepEqual(derivedHostNames(image), names, image);
  assert.deepEqual(aliasesOf('db, cache,,web'), ['db', 'cache', 'web']);
  assert.deepEqual(aliasesOf(undefined), []);
});

test('services from JOB_RESPONSE_FILE win over CUSTOM_ENV_CI_JOB_SERVICES; only public variables reach services', () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-services-spec-`);
  try {
    writeFileSync(`${dir}/job.json`, JSON.stringify({
      variables: [
        { key: 'CI_JOB_ID', value: '7', public: true }, { key: 'DEPLOY_TOKEN', value: 'secret', public: false },
        { key: 'A_FILE', value: 'x', public: true, file: true }, { key: 'CI_DEBUG_SERVICES', value: 'true', public: true },
      ],
      services: [
        { name: 'postgres:16', alias: 'db,pg', ports: [{ number: 5432, protocol: 'tcp' }, { number: 53, protocol: 'udp' }],
          variables: [{ key: 'POSTGRES_PASSWORD', value: 'pw' }], entrypoint: ['docker-entrypoint.sh'], command: ['postgres', '-c', 'fsync=off'] },
        { name: 'redis:7' },
      ],
    }));
    const env = { JOB_RESPONSE_FILE: `${dir}/job.json`, CUSTOM_ENV_CI_JOB_SERVICES: '[{"name":"ignored"}]' };
    const { services, jobVariables, debug } = jobServicesFromEnv(env);
    assert.equal(debug, true);
    assert.deepEqual(jobVariables, [['CI_JOB_ID', '7'], ['CI_DEBUG_SERVICES', 'true']]);
    assert.deepEqual(services[0], {
      image: 'postgres:16', hostNames: ['db', 'pg', 'postgres'], entrypoint: ['docker-entrypoint.sh'], command: ['postgres', '-c', 'fsync=off'],
      ports: [5432], variables: [['POSTGRES_PASSWORD', 'pw']], pullPolicies: [],
    });
    assert.deepEqual(services[1]!.hostNames, ['redis']);
    const fromEnv = jobServicesFromEnv({ CUSTOM_ENV_CI_JOB_SERVICES: '[{"name":"redis:7","alias":"cache","entrypoint":null,"command":null}]' });
    assert.deepEqual(fromEnv.services.map((service) => service.hostNames), [['cache', 'redis']]);
    assert.deepEqual(jobServicesFromEnv({}).services, []);
    assert.throws(() => jobServicesFromEnv({ CUSTOM_ENV_CI_JOB_SERVICES: '{' }), JobError);
    assert.throws(() => jobServicesFromEnv({ CUSTOM_ENV_CI_JOB_SERVICES: '[{"name":"x","alias":"../etc"}]' }), /not a host name/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('one service as a runner takes it: aliases split and checked, derived names after them, empty lists as none', () => {
  assert.deepEqual(serviceSpecOf({ image: 'busybox', alias: 'web www,busybox', entrypoint: [], command: ['httpd', '-f'] }), {
    image: 'busybox', hostNames: ['web', 'www', 'busybox'], entrypoint: undefined, command: ['httpd', '-f'], ports: [], variables: [], pullPolicies: [],
  });
  assert.throws(() => serviceSpecOf({ image: 'redis', alias: 'a/b' }), /^JobError: service redis: alias "a\/b" is not a host name$/);
  const debug: Array<[string | undefined, boolean]> = [['true', true], ['1', true], ['TRUE', true], ['t', true], ['false', false], ['yes', false], ['', false], [undefined, false]];
  for (const [value, on] of debug) assert.equal(isDebugServices(value), on, String(value));
});

test('what a service runs, as docker run decides it', () => {
  const config = { entrypoint: ['docker-entrypoint.sh'], cmd: ['postgres'] };
  assert.deepEqual(serviceArgv({ entrypoint: undefined, command: undefined }, config), ['docker-entrypoint.sh', 'postgres']);
  assert.deepEqual(serviceArgv({ entrypoint: undefined, command: ['postgres', '-c', 'fsync=off'] }, config), ['docker-entrypoint.sh', 'postgres', '-c', 'fsync=off']);
  // A job's entrypoint drops the image's Cmd, as docker run --entrypoint does.
  assert.deepEqual(serviceArgv({ entrypoint: ['sh', '-c'], command: undefined }, config), ['sh', '-c']);
  assert.deepEqual(serviceArgv({ entrypoint: ['httpd'], command: ['-f'] }, config), ['httpd', '-f']);
  assert.deepEqual(serviceArgv({ entrypoint: undefined, command: undefined }, undefined), []);
});

test('a service\'s environment: default PATH, image Env, job variables, then its own variables', () => {
  assert.deepEqual(serviceEnv(['PATH=/opt/bin:/bin', 'PGDATA=/var/lib/pg', 'BROKEN'], [['CI_JOB_ID', '7'], ['PGDATA', 'job']], [['PGDATA', 'own']]),
    ['PATH=/opt/bin:/bin', 'PGDATA=own', 'CI_JOB_ID=7']);
});

test('a WorkingDir the image lacks is found missing, through the image\'s own symlinks', () => {
  const tree = mkdtempSync(`${tmpdir()}/nsr-services-tree-`);
  try {
    mkdirSync(`${tree}/srv/here`, { recursive: true });
    symlinkSync('/srv', `${tree}/data`);
    assert.equal(missingWorkdir(tree, '/srv/here'), false);
    assert.equal(missingWorkdir(tree, '/data/here'), false);
    assert.equal(missingWorkdir(tree, '/srv/missing'), true);
    assert.equal(missingWorkdir(tree, undefined), false);
  } finally {
    rmSync(tree, { recursive: true });
  }
});

test('the pod: /etc/hosts, pasta publishing nothing, the port probe, machine names', () => {
  assert.equal(buildHostsFile(['run-7', 'run-7-s0'], ['db', 'postgres', 'db']),
    '# nspawn-runner: the job\'s pod (lib/services/pod.mts)\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' +
    '127.0.1.1\trun-7 run-7-s0\n127.0.0.1\tdb postgres\n');
  const pasta = buildPastaArgs('/j/netns', '/j/pasta.pid');
  for (const flag of ['-t', '-u', '-T', '-U']) assert.equal(pasta[pasta.indexOf(flag) + 1], 'none', `${flag} none: no port of the pod is published`);
  assert.deepEqual(pasta.slice(-4), ['--netns', '/j/netns', '--pid', '/j/pasta.pid']);
  const probe = buildPortProbeArgs('/j/netns', [5432, 6379], 29.5, 4242);
  assert.deepEqual(probe.slice(0, 4), ['nsenter', '--net=/j/netns', '--', 'bash']);
  assert.deepEqual(probe.slice(-5), ['probe', '30', '4242', '5432', '6379']);
  assert.equal(serviceMachineName('run-7', 0), 'run-7-s0');
  const long = serviceMachineName(`run-${'1'.repeat(60)}`, 3);
  assert.ok(long.length <= 64 && long.endsWith('-s3'), long);
});

test('service machines join the pod and run their own command; services: settings parse', () => {
  const args = buildNspawnArgs({
    machine: 'run-7-s0', storageArgs: ['--directory=/i'], boot: false, payload: ['httpd', '-f'], register: false, binds: [],
    systemdVersion: 252, network: 'host', networkNamespace: '/j/netns', payloadEnv: ['A=1'], workdir: '/srv', user: 'postgres',
  });
  assert.ok(args.includes('--network-namespace-path=/j/netns'));
  assert.ok(!args.includes('--private-network'));
  for (const flag of ['--setenv=A=1', '--chdir=/srv', '--user=postgres', '--as-pid2']) assert.ok(args.includes(flag), flag);
  assert.deepEqual(args.slice(-3), ['--', 'httpd', '-f']);
  const unit = buildSystemdRunArgs({ unit: 'u', description: 'd', limits: {}, systemdVersion: 252, readyTimeoutSeconds: 5, outputFile: '/j/services/0/nspawn.log', nspawnArgs: ['systemd-nspawn'] });
  assert.ok(unit.includes('--property=StandardOutput=append:/j/services/0/nspawn.log'));
  assert.deepEqual(parseConfigDocument({ allowed_services: ['postgres:*', 'registry.example.com/*'], services_timeout: '2m' }, 'f'),
    { allowedServices: ['postgres:*', 'registry.example.com/*'], servicesTimeoutSeconds: 120 });
  assert.throws(() => parseConfigDocument({ allowed_services: 'postgres' }, 'f'), /allowed_services must be a list/);
});

test('allowed_services refuses a service image before anything is pulled, as a build failure naming it', async () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-services-allowed-`);
  try {
    writeFileSync(`${dir}/c.conf`, 'oci:\n  enabled: true\nallowed_services: ["postgres:*"]\nallowed_images: ["nothing-else"]\n');
    const settings = await loadSettings({ root: dir, config: `${dir}/c.conf` }, {});
    const services = (image: string) => ({ services: [{ image, hostNames: [], entrypoint: undefined, command: undefined, ports: [], variables: [], pullPolicies: [] }], jobVariables: [], debug: false });
    await assert.rejects(planServices(settings, services('redis:7'), undefined),
      (error: Error) => error instanceof JobError && /^service redis:7: image "redis:7" is not allowed on this runner; allowed: postgres:\*$/.test(error.message));
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('service variables expand once with the job\'s variables, as the Docker executor expands them; raw ones do not', () => {
  const dir = mkdtempSync(`${tmpdir()}/nsr-services-expand-`);
  try {
    writeFileSync(`${dir}/job.json`, JSON.stringify({
      variables: [
        { key: 'DB_NAME', value: 'app_$CI_JOB_ID', public: true }, { key: 'CI_JOB_ID', value: '7', public: true },
        { key: 'LITERAL', value: 'x$DB_NAME', public: true, raw: true },
      ],
      services: [{ name: 'postgres:16', variables: [{ key: 'POSTGRES_DB', value: '${DB_NAME}_test' }, { key: 'PRICE', value: '$$5' }] }],
    }));
    const { services, jobVariables } = jobServicesFromEnv({ JOB_RESPONSE_FILE: `${dir}/job.json` });
    assert.deepEqual(jobVariables, [['DB_NAME', 'app_7'], ['CI_JOB_ID', '7'], ['LITERAL', 'x$DB_NAME']]);
    assert.deepEqual(services[0]!.variables, [['POSTGRES_DB', 'app_7_test'], ['PRICE', '$5']]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
