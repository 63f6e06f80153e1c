// Image creation and maintenance for real: mmdebstrap/debootstrap and
// ansible-playbook on Debian images, with jobs driven through prepare, run
// and cleanup before, during and after each change. Images are copied from
// caches (test/support/image-state.mts); only the creation tests bootstrap.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { isSubvolume } from '../../lib/btrfs.mts';
import { mountScratchBtrfs, type ScratchFilesystem } from '../support/btrfs.mts';
import { copyDebianImage, copyI386Image, ImageState } from '../support/image-state.mts';
import { leftoversOf } from '../support/leftovers.mts';
import { systemFailure } from '../support/runner.mts';

/** A playbook that stamps the image with a release name, plus more tasks. */
function releasePlaybook(release: string, { vars = '', tasks = '' } = {}): string {
  return [
    '- hosts: all',
    '  vars:',
    '    nspawn_runner_chroot_suite: bookworm',
    vars,
    '  tasks:',
    '    - name: say which release this image is',
    '      copy:',
    '        dest: /etc/nsr-release',
    `        content: "${release}\\n"`,
    tasks,
  ].filter(Boolean).join('\n') + '\n';
}

const failingTask = ['    - name: break on purpose', '      fail:', '        msg: this playbook fails on purpose'].join('\n');

/** What is in an image's store besides its versions and logs: only image.json, no lock or marker left behind. */
function storeExtras(state: ImageState, name: string): string[] {
  return readdirSync(`${state.root}/.images/${name}`).filter((entry) => entry !== 'logs' && !/^(legacy-)?\d{8}T\d{6}Z-[0-9a-f]{6}$/.test(entry));
}

const stores = [
  { name: 'ext4', backends: ['overlay', 'tmpfs'], btrfs: false },
  { name: 'btrfs', backends: ['btrfs'], btrfs: true },
] as const;

for (const store of stores) describe(`updates never disturb running jobs (${store.name}: ${store.backends.join(', ')})`, () => {
  let scratch: ScratchFilesystem | undefined;
  let state: ImageState;
  before(async () => {
    if (store.btrfs) scratch = mountScratchBtrfs('3G');
    state = new ImageState(scratch?.mountPoint);
    // A plain directory, as an admin or the original nspawn-runner made it.
    await copyDebianImage(state.root, 'stable');
    state.writePlaybook('stable', releasePlaybook('r1'));
  });
  after(async () => {
    await state?.dispose();
    scratch?.dispose();
  });

  test('a job keeps the version it started with through every stage; the next job gets the new one', async () => {
    const first = await state.run(['chroot-maintenance', 'stable']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /image stable: moved into the versioned store as legacy-/);
    for (const backend of store.backends) {
      const prepared = await state.prepare(`old-${backend}`, 'stable', { env: { NSPAWN_RUNNER_BACKEND: backend } });
      assert.equal(prepared.code, 0, prepared.stderr);
      assert.equal(await state.output(`old-${backend}`, 'cat /etc/nsr-release; echo mine > /job-file'), 'r1\n');
    }
    if (store.btrfs) assert.ok(isSubvolume(`${state.root}/.jobs/old-btrfs/root`), 'maintenance made the image a subvolume: jobs get snapshots');

    state.writePlaybook('stable', releasePlaybook('r2'));
    const second = await state.run(['chroot-maintenance', 'stable']);
    assert.equal(second.code, 0, second.stderr);
    for (const backend of store.backends) {
      assert.equal(await state.output(`old-${backend}`, 'cat /etc/nsr-release /job-file'), 'r1\nmine\n');
      assert.equal((await state.prepare(`new-${backend}`, 'stable', { env: { NSPAWN_RUNNER_BACKEND: backend } })).code, 0);
      assert.equal(await state.output(`new-${backend}`, 'cat /etc/nsr-release; test ! -e /job-file && echo clean'), 'r2\nclean\n');
    }
    for (const backend of store.backends) assert.equal(await state.output(`old-${backend}`, 'cat /etc/nsr-release'), 'r1\n');

    const row = await state.row('stable');
    assert.equal(row.layout, 'versioned');
    assert.equal(row.storage, store.btrfs ? 'subvolume' : 'directory');
    assert.equal(row.versions.length, 2, 'the old version stays while jobs use it');
    assert.deepEqual(row.jobs.map((job) => job.jobId).sort(), store.backends.flatMap((b) => [`new-${b}`, `old-${b}`]).sort());
    for (const job of row.jobs) assert.equal(job.tree === row.tree, job.jobId.startsWith('new-'), job.jobId);

    for (const backend of store.backends) assert.equal((await state.cleanup(`old-${backend}`)).code, 0);
    assert.deepEqual((await state.row('stable')).versions, [row.version], 'the last job on the old version removed it');
    for (const backend of store.backends) assert.equal((await state.cleanup(`new-${backend}`)).code, 0);
    assert.deepEqual(storeExtras(state, 'stable'), ['image.json']);
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });

  test('a failing playbook leaves the previous version in service', async () => {
    const before = await state.row('stable');
    state.writePlaybook('stable', releasePlaybook('r3', { tasks: failingTask }));
    const failed = await state.run(['chroot-maintenance', 'stable']);
    assert.equal(failed.code, systemFailure);
    assert.match(failed.stderr, /this playbook fails on purpose/);
    assert.match(failed.stderr, /image stable: playbook \S+ failed for image stable \(exit 2\) \(see ansible's output in \S+\.log; the image was not changed\)/);
    assert.match(failed.stderr, /maintenance failed for 1 of 1 image\(s\): stable/);
    const after = await state.row('stable');
    assert.equal(after.tree, before.tree);
    assert.deepEqual(after.versions, before.versions, 'the half-updated version is gone');
    assert.equal(after.lastMaintenance?.ok, false);
    assert.equal((await state.prepare('after-failure', 'stable')).code, 0);
    assert.equal(await state.output('after-failure', 'cat /etc/nsr-release'), 'r2\n');
    assert.equal((await state.cleanup('after-failure')).code, 0);
  });

  test('chroot-login changes the image through a new version, discarded when the command fails', async () => {
    const changed = await state.run(['chroot-login', 'stable', '--', 'sh', '-c', 'echo by-hand > /etc/nsr-login']);
    assert.equal(changed.code, 0, changed.stderr);
    const discarded = await state.run(['chroot-login', 'stable', '--', 'sh', '-c', 'touch /etc/nsr-discarded; exit 3']);
    assert.equal(discarded.code, 3);
    assert.match(discarded.stderr, /image stable: exit status 3: changes discarded, the previous version stays in service/);
    assert.equal((await state.prepare('after-login', 'stable')).code, 0);
    assert.equal(await state.output('after-login', 'cat /etc/nsr-login; test -e /etc/nsr-discarded || echo no-discarded'), 'by-hand\nno-discarded\n');
    assert.equal((await state.cleanup('after-login')).code, 0);
    assert.equal((await state.row('stable')).lastMaintenance?.how, 'login');
  });

  test('chroot-remove refuses while a job runs; --force removes the name and the job ends on its version', async () => {
    assert.equal((await state.prepare('during-remove', 'stable')).code, 0);
    const refused = await state.run(['chroot-remove', 'stable']);
    assert.equal(refused.code, systemFailure);
    assert.match(refused.stderr, /image "stable" is in use by job during-remove \(retry when those jobs have finished, or pass --force/);
    const forced = await state.run(['chroot-remove', '--force', 'stable']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /playbook \S+stable\.yaml still exists: chroot-maintenance will create image stable again/);
    assert.ok(!existsSync(`${state.root}/stable`));
    assert.equal(await state.output('during-remove', 'cat /etc/nsr-login'), 'by-hand\n');
    const missing = await state.prepare('after-remove', 'stable');
    assert.match(missing.stderr, /image "stable" not found/);
    assert.equal((await state.cleanup('during-remove')).code, 0);
    assert.ok(!existsSync(`${state.root}/.images/stable`), 'the last job took the last version with it');
    if (store.btrfs) {
      const subvolumes = execFileSync('btrfs', ['subvolume', 'list', '-o', state.root], { encoding: 'utf8' });
      assert.equal(subvolumes.trim(), '', 'no subvolume is left');
    }
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });
});

describe('images created from playbooks (mmdebstrap), recreated, and broken playbooks', () => {
  let state: ImageState;
  const freshVars = [
    '    nspawn_runner_chroot_bootstrapper: mmdebstrap',
    '    nspawn_runner_chroot_packages: [hello]',
  ].join('\n');
  before(() => {
    state = new ImageState();
    state.writePlaybook('fresh', releasePlaybook('made by ansible', { vars: freshVars }));
  });
  after(async () => state?.dispose());

  test('chroot-maintenance creates a missing image; its packages and tasks are in the jobs', async () => {
    const made = await state.run(['chroot-maintenance']);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stderr, /image fresh: missing: creating it/);
    assert.equal((await state.prepare('fresh-1', 'fresh')).code, 0);
    assert.equal(await state.output('fresh-1', 'cat /etc/nsr-release; hello'), 'made by ansible\nHello, world!\n');
    assert.equal((await state.cleanup('fresh-1')).code, 0);
    const row = await state.row('fresh');
    assert.equal(row.layout, 'versioned');
    assert.deepEqual([row.created?.suite, row.created?.bootstrapper, row.created?.packages], ['bookworm', 'mmdebstrap', ['hello']]);
    assert.equal(row.lastMaintenance?.ok, true);
    assert.equal(row.playbook, `${state.configDir}/fresh.yaml`);
    assert.ok(row.sizeBytes! > 50_000_000, `size ${row.sizeBytes}`);
  });

  test('nspawn_runner_maint_recreate bootstraps a new version instead of updating the old one', async () => {
    const byHand = await state.run(['chroot-login', 'fresh', '--', 'touch', '/etc/nsr-by-hand']);
    assert.equal(byHand.code, 0, byHand.stderr);
    const before = await state.row('fresh');
    state.writePlaybook('fresh', releasePlaybook('made again', { vars: `${freshVars}\n    nspawn_runner_maint_recreate: yes` }));
    const remade = await state.run(['chroot-maintenance', 'fresh']);
    assert.equal(remade.code, 0, remade.stderr);
    assert.match(remade.stderr, /image fresh: recreating it \(nspawn_runner_maint_recreate\)/);
    const after = await state.row('fresh');
    assert.notEqual(after.version, before.version);
    assert.notEqual(after.created?.at, before.created?.at);
    assert.equal((await state.prepare('fresh-2', 'fresh')).code, 0);
    assert.equal(await state.output('fresh-2', 'cat /etc/nsr-release; test -e /etc/nsr-by-hand || echo rebuilt'), 'made again\nrebuilt\n');
    assert.equal((await state.cleanup('fresh-2')).code, 0);
    state.writePlaybook('fresh', releasePlaybook('made again', { vars: freshVars }));
  });

  test('broken playbooks are reported and skipped; the others are still maintained', async () => {
    state.writePlaybook('broken', '- hosts: all\n  vars: [unclosed\n');
    state.writePlaybook('mapping', 'hosts: all\ntasks: []\n');
    state.writePlaybook('empty', '');
    state.writePlaybook('typo', '- hosts: all\n  vars:\n    nspawn_runner_chroot_suit: bookworm\n  tasks: []\n');
    try {
      const result = await state.run(['chroot-maintenance']);
      assert.equal(result.code, systemFailure);
      const expected = [
        /error: image broken: \S+broken\.yaml: not valid YAML/,
        /warning: \S+mapping\.yaml: not a playbook: a playbook is a YAML list of plays, this is a mapping/,
        /error: image mapping: \S+mapping\.yaml is not a playbook ansible can run/,
        /warning: \S+empty\.yaml: the playbook is empty/,
        /warning: \S+typo\.yaml: unknown variable nspawn_runner_chroot_suit ignored/,
        /error: image typo: no suite to bootstrap from \(set nspawn_runner_chroot_suite in the image's playbook/,
        /image fresh: version \S+ in service/,
        /maintenance failed for 4 of 5 image\(s\): broken, empty, mapping, typo/,
      ];
      for (const pattern of expected) assert.match(result.stderr, pattern);
      assert.deepEqual(readdirSync(`${state.root}/.images`), ['fresh'], 'nothing is left of the skipped ones');
    } finally {
      for (const name of ['broken', 'mapping', 'empty', 'typo']) rmSync(`${state.configDir}/${name}.yaml`);
    }
  });

  test('chroot-create refuses an existing image or a broken playbook before bootstrapping; a failed bootstrap leaves nothing', async () => {
    const exists = await state.run(['chroot-create', 'fresh']);
    assert.equal(exists.code, systemFailure);
    assert.match(exists.stderr, /image "fresh" already exists .* \(update it with chroot-maintenance fresh/);
    state.writePlaybook('broken', '- [unclosed\n');
    try {
      const broken = await state.run(['chroot-create', 'broken']);
      assert.match(broken.stderr, /broken\.yaml: not valid YAML/);
      assert.doesNotMatch(broken.stderr, /debootstrap/);
    } finally {
      rmSync(`${state.configDir}/broken.yaml`);
    }
    const badSuite = await state.run(['chroot-create', '--suite', 'no-such-suite', 'nosuite']);
    assert.equal(badSuite.code, systemFailure);
    assert.match(badSuite.stderr, /debootstrap failed for image nosuite/);
    assert.ok(!existsSync(`${state.root}/nosuite`));
    // Only the log of the failed bootstrap is kept, where the error said it is.
    assert.deepEqual(readdirSync(`${state.root}/.images`), ['fresh', 'nosuite']);
    assert.deepEqual(readdirSync(`${state.root}/.images/nosuite`), ['logs']);
    assert.match(badSuite.stderr, new RegExp(`full output: ${state.root}/\\.images/nosuite/logs/\\S+-create\\.log`));
    assert.deepEqual(storeExtras(state, 'fresh'), ['image.json']);
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });
});

describe('i386 images', () => {
  let state: ImageState;
  before(async () => {
    state = new ImageState();
    await copyI386Image(state.root, 'bookworm-i386');
    state.writePlaybook('bookworm-i386', releasePlaybook('i386', {
      vars: '    nspawn_runner_chroot_arch: i386',
      tasks: ['    - name: record what the playbook runs as', '      shell: uname -m > /etc/nsr-uname'].join('\n'),
    }));
  });
  after(async () => state?.dispose());

  test('jobs and playbooks on an i386 image run as i686', async () => {
    assert.equal((await state.prepare('i386-1', 'bookworm-i386')).code, 0);
    assert.equal(await state.output('i386-1', 'uname -m; dpkg --print-architecture'), 'i686\ni386\n');
    const maintained = await state.run(['chroot-maintenance', 'bookworm-i386']);
    assert.equal(maintained.code, 0, maintained.stderr);
    assert.equal((await state.prepare('i386-2', 'bookworm-i386')).code, 0);
    assert.equal(await state.output('i386-2', 'cat /etc/nsr-uname'), 'i686\n');
    assert.equal((await state.row('bookworm-i386')).personality, 'x86');
    for (const job of ['i386-1', 'i386-2']) assert.equal((await state.cleanup(job)).code, 0);
    assert.deepEqual(leftoversOf(state.root), { mounts: [], processes: [], jobDirs: [] });
  });
});
