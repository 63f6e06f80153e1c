// The logger's writeAll on a stdout that gitlab-runner made a non-blocking
// pipe, read slowly (a huge job log): the writer waits, it does not spin.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { repoRoot } from './support/runner.mts';

const size = 4 << 20;

/** A reader that makes its end's pipe non-blocking, reads nothing for a second, then drains it. */
const slowReader = [
  'import os, subprocess, sys, time',
  'r, w = os.pipe()',
  'os.set_blocking(w, False)',
  'child = subprocess.Popen(sys.argv[1:], stdout=w)',
  'os.close(w)',
  'time.sleep(1)',
  'total = 0',
  'while True:',
  '    data = os.read(r, 65536)',
  '    if not data: break',
  '    total += len(data)',
  'print(total)',
  'sys.exit(child.wait())',
].join('\n');

/** Writes size bytes with writeAll to its stdout and reports how many write(2) calls that took. */
const writer = `
import { writeSync } from 'node:fs';
const { writeAll } = await import(${JSON.stringify(`${repoRoot}/lib/log.mts`)});
let attempts = 0;
writeAll(1, Buffer.alloc(${size}, 'x'), (fd, buffer) => { attempts++; return writeSync(fd, buffer); });
process.stderr.write(String(attempts));
`;

test('writeAll waits for a full non-blocking pipe instead of retrying at once', async () => {
  const child = spawn('python3', ['-c', slowReader, process.execPath, '--import', 'tsx', '--input-type=module', '-e', writer],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise((resolve) => child.on('close', resolve));
  assert.equal(code, 0, stderr);
  assert.equal(Number(stdout), size, 'everything arrived');
  const attempts = Number(stderr);
  assert.ok(attempts > 0, stderr);
  // 4 MiB through a 64 KiB pipe is some 64 writes; a writer that spins on
  // EAGAIN makes hundreds of thousands of attempts in the reader's second.
  assert.ok(attempts < 2000, `${attempts} write attempts`);
});
