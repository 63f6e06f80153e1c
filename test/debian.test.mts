// End to end on the debootstrapped Debian image (cached on the machine,
// rebuilt when missing): the sample job, and a real server that one stage
// starts and a later stage talks to.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { StateFixture } from './support/fixture.mts';
import { debianImage, debianRoot, ensureDebianImage } from './support/images.mts';
import { leftoversOf } from './support/leftovers.mts';

describe('jobs on the Debian image', () => {
  let state: StateFixture;
  const id = (name: string) => `deb-${name}-${process.pid}`;
  before(async () => {
    await ensureDebianImage();
    state = new StateFixture(debianRoot);
  });
  // The cached image stays for the next run; only this run's jobs go.
  after(() => state.dispose(false));

  test('the sample job passes through every stage', async () => {
    const result = await state.run(['sample-job', '--image', debianImage, '--id', id('sample')]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /Running on run-deb-sample-\d+: Debian GNU\/Linux 12 \(bookworm\)/);
    assert.match(result.stdout, /sample sources/);
    assert.match(result.stdout, /service from build_script still alive/);
    assert.deepEqual(leftoversOf(debianRoot, [id('sample')]), { mounts: [], processes: [], jobDirs: [] });
  });

  test('a server started in one stage answers in a later one, and is gone after cleanup', async () => {
    const jobId = id('server');
    const prepared = await state.prepare(jobId, debianImage);
    assert.equal(prepared.code, 0, prepared.stderr);
    // The server's output is not redirected: it holds the stage's stdout open.
    const started = await state.stage(jobId, 'build_script', [
      'set -e',
      'mkdir -p /srv/www && echo "hello from build_script" > /srv/www/index.html',
      'python3 -m http.server 8765 --bind 127.0.0.1 --directory /srv/www &',
      'for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/8765) 2>/dev/null && break; sleep 0.1; done',
      'echo server up',
    ].join('\n'));
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /server up/);
    const fetched = await state.stage(jobId, 'after_script',
      'python3 -c "import urllib.request; print(urllib.request.urlopen(\'http://127.0.0.1:8765/\').read().decode())"');
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.match(fetched.stdout, /hello from build_script/);
    assert.equal((await state.cleanup(jobId)).code, 0);
    assert.deepEqual(leftoversOf(debianRoot, [jobId]), { mounts: [], processes: [], jobDirs: [] });
  });
});
