// Times each stage as gitlab-runner runs it (a fresh process per call) next to
// the raw floor measured in the same run: `node -e 0`, a bare systemd-nspawn
// start of the same image, and a bare nsenter into a running machine.
// Prints medians and ratios; asserts nothing.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import minimist from 'minimist';
import { createSubvolume, isBtrfs } from '../lib/btrfs.mts';
import { debianRoot, makeBusyboxImage } from '../test/support/images.mts';
import { measureOci } from './oci-bench.mts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'backends', 'large-runs'], boolean: ['help', 'skip-oci'] });
if (args.help) {
  process.stdout.write('usage: npm run bench -- [--runs N] [--backends overlay,tmpfs,btrfs] [--large-runs N] [--skip-oci]\n' +
    'Times config, prepare, run (script `true`) and cleanup against the raw nspawn/nsenter floor,\n' +
    'then OCI pulls against skopeo+umoci by hand, warm prepares on pulled images, and shared blobs.\n');
  process.exit(0);
}
const runs = Number(args.runs ?? 15);
const backends = String(args.backends ?? 'overlay,tmpfs,btrfs').split(',');
const executable = fileURLToPath(new URL('../bin/nspawn-runner', import.meta.url));

function timed(argv: string[], env: NodeJS.ProcessEnv = process.env): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`${argv.join(' ')} failed: ${result.stderr}`);
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function leaderOf(root: string, jobId: string): number {
  const record = JSON.parse(execFileSync('cat', [`${root}/.jobs/${jobId}/job.json`], { encoding: 'utf8' }));
  return record.leaderPid;
}

interface Row { name: string; ms: number }

/** The floor: what a stage costs with no nspawn-runner at all. */
function measureFloor(root: string): Row[] {
  const node: number[] = [];
  const nspawn: number[] = [];
  const nsenter: number[] = [];
  const upper = `${root}/.floor-upper`;
  const image = `${root}/busybox`;
  const env = { ...process.env, CUSTOM_ENV_CI_JOB_ID: 'floor' };
  timed([executable, '--root', root, 'prepare', 'busybox'], env);
  const leader = leaderOf(root, 'floor');
  for (let i = 0; i < runs; i++) {
    node.push(timed(['node', '-e', '0']));
    rmSync(upper, { recursive: true, force: true });
    mkdirSync(upper);
    nspawn.push(timed(['systemd-nspawn', '--quiet', '--register=no', '--keep-unit', `--directory=${image}`,
      `--overlay=${image}:${upper}:/`, '--console=pipe', '--', 'true']));
    nsenter.push(timed(['nsenter', `--target=${leader}`, '--all', '--root', '--wd', '--', 'true']));
  }
  timed([executable, '--root', root, 'cleanup'], env);
  rmSync(upper, { recursive: true, force: true });
  return [
    { name: 'node -e 0', ms: median(node) },
    { name: 'systemd-nspawn true (overlay)', ms: median(nspawn) },
    { name: 'nsenter true', ms: median(nsenter) },
  ];
}

function measureStages(root: string, backend: string): Row[] {
  const script = `${root}/.true.sh`;
  writeFileSync(script, 'true\n');
  const times: Record<string, number[]> = { config: [], prepare: [], run: [], cleanup: [] };
  for (let i = 0; i < runs; i++) {
    const env = { ...process.env, CUSTOM_ENV_CI_JOB_ID: `bench-${i}`, BUILD_FAILURE_EXIT_CODE: '1', SYSTEM_FAILURE_EXIT_CODE: '2' };
    const base = [executable, '--root', root, '--backend', backend];
    times.config!.push(timed([...base, 'gitlab-config'], env));
    times.prepare!.push(timed([...base, 'prepare', 'busybox'], env));
    times.run!.push(timed([...base, 'run', script, 'build_script'], env));
    times.cleanup!.push(timed([...base, 'cleanup'], env));
  }
  return Object.entries(times).map(([name, values]) => ({ name: `${backend}: ${name}`, ms: median(values) }));
}

const work = mkdtempSync(`${tmpdir()}/nsr-bench-`);
let loop: string | undefined;
try {
  const roots: Record<string, string> = {};
  const plain = `${work}/state`;
  mkdirSync(plain);
  makeBusyboxImage(`${plain}/busybox`);
  roots.overlay = roots.tmpfs = plain;
  if (backends.includes('btrfs')) {
    loop = `${work}/btrfs`;
    mkdirSync(`${loop}/mnt`, { recursive: true });
    execFileSync('truncate', ['-s', '1G', `${loop}/fs.img`]);
    execFileSync('mkfs.btrfs', ['-q', `${loop}/fs.img`], { stdio: 'ignore' });
    execFileSync('mount', ['-o', 'loop', `${loop}/fs.img`, `${loop}/mnt`]);
    if (isBtrfs(`${loop}/mnt`)) await createSubvolume(`${loop}/mnt/busybox`);
    makeBusyboxImage(`${loop}/mnt/busybox`);
    roots.btrfs = `${loop}/mnt`;
  }
  const floor = measureFloor(plain);
  const stages = backends.flatMap((backend) => measureStages(roots[backend]!, backend));
  const floorOf = Object.fromEntries(floor.map((row) => [row.name, row.ms]));
  const nodeFloor = floorOf['node -e 0']!;
  const ratioBase: Record<string, number> = {
    config: nodeFloor,
    prepare: nodeFloor + floorOf['systemd-nspawn true (overlay)']!,
    run: nodeFloor + floorOf['nsenter true']!,
    cleanup: nodeFloor,
  };
  const lines = [`nspawn-runner bench: medians of ${runs} runs, busybox image, ${new Date().toISOString()}`, '', 'floor:'];
  for (const row of floor) lines.push(`  ${row.name.padEnd(34)} ${row.ms.toFixed(1).padStart(7)} ms`);
  lines.push('', 'stages (ratio against node -e 0 + the matching raw command):');
  for (const row of stages) {
    const stage = row.name.split(': ')[1]!;
    lines.push(`  ${row.name.padEnd(34)} ${row.ms.toFixed(1).padStart(7)} ms   ${(row.ms / ratioBase[stage]!).toFixed(2)}x`);
  }
  if (!args['skip-oci']) {
    lines.push('', ...await measureOci({
      executable, work, runs, largeRuns: Number(args['large-runs'] ?? 3), debianRoot, median,
    }));
  }
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  if (loop) spawnSync('umount', ['--lazy', `${loop}/mnt`]);
  rmSync(work, { recursive: true, force: true });
}
