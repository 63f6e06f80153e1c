#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// Times nspawn-runner as gitlab-runner runs it, side by side in one run:
// today's way (Node 20 on esbuild bundles, built here into a temporary
// directory from the same sources) and the product (Bun on the sources,
// bin/nspawn-runner). Each stage is a fresh process, the two alternate, and
// every figure is a median, next to the raw floor measured in the same run:
// a runtime's bare start, a bare systemd-nspawn start of the same image, a
// bare nsenter into a running machine. A second mode runs a whole one-line
// job through the real gitlab-runner (run-single against a coordinator on
// loopback) with our executor and with gitlab-runner's own shell executor.
// Prints tables; asserts nothing.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import minimist from 'minimist';
import { parse, stringify } from 'smol-toml';
import { createSubvolume, isBtrfs } from '../lib/btrfs.mts';
import { Coordinator } from '../test/support/coordinator.mts';
import { debianRoot, makeBusyboxImage } from '../test/support/images.mts';
import { measureOci } from './oci-bench.mts';
import { measureServices } from './services-bench.mts';
import { median, timed } from './timing.mts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'job-runs', 'large-runs', 'backends', 'mode', 'gitlab-runner'], boolean: ['help'] });
if (args.help) {
  process.stdout.write('usage: npm run bench -- [--mode stages|job|oci|services|all] [--runs N] [--job-runs N] [--large-runs N] [--backends overlay,tmpfs,btrfs] [--gitlab-runner PATH]\n' +
    'stages: config, prepare, run (script `true`) and cleanup, Node bundles vs Bun from source, against the raw nspawn/nsenter floor.\n' +
    'job: a whole one-line job through gitlab-runner run-single: our executor (Node, Bun) vs gitlab-runner\'s shell executor.\n' +
    'oci: OCI pulls against skopeo+umoci by hand, warm prepares on pulled images vs local ones, shared blobs (--large-runs for the Debian image).\n' +
    'The gitlab-runner binary: --gitlab-runner, else $NSPAWN_RUNNER_TEST_GITLAB_RUNNER, else the tests\' cache, else PATH.\n');
  process.exit(0);
}
const mode = String(args.mode ?? 'all');
const runs = Number(args.runs ?? 15);
const jobRuns = Number(args['job-runs'] ?? 10);
const backends = String(args.backends ?? 'overlay,tmpfs,btrfs').split(',');
const repoRoot = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
const bun = `${repoRoot}/bin/bun`;

interface Runtime {
  name: string;
  /** bin/nspawn-runner of this runtime. */
  executable: string;
}

/** bin/nspawn-runner as it was before Bun, word for word, beside the bundles. */
const nodeEntryPoint = `#!/bin/sh
# Entry point for gitlab-runner's config.toml and for admins. Resolves its own
# location, so a symlink in /usr/local/bin works from any directory.
here=$(dirname "$(readlink -f "$0")")
exec node "$here/../dist/nspawn-runner.mjs" "$@"
`;

/**
 * Today's build: build.mjs as it was (one self-contained bundle per script,
 * the entry point importing the command's bundle by path), from the sources
 * of this checkout.
 */
async function buildNodeBundles(dir: string): Promise<Runtime> {
  const { build } = await import('esbuild');
  const entryPoints = Object.fromEntries(readdirSync(`${repoRoot}/scripts`).filter((file) => file.endsWith('.mts'))
    .map((file) => [file.replace(/\.mts$/, ''), `${repoRoot}/scripts/${file}`]));
  const fromSource = 'await import(`./${commands[name]!.file}.mts`);';
  const fromBundle = 'await import(new URL(`./${commands[name]!.file}.mjs`, import.meta.url).href);';
  await build({
    entryPoints,
    outdir: `${dir}/dist`,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    banner: { js: "import { createRequire as __nrCreateRequire } from 'node:module'; const require = __nrCreateRequire(import.meta.url);" },
    logLevel: 'warning',
    plugins: [{
      name: 'dispatch-to-bundles',
      setup(builder) {
        builder.onLoad({ filter: /\/scripts\/nspawn-runner\.mts$/ }, ({ path }) => {
          const source = readFileSync(path, 'utf8');
          if (!source.includes(fromSource)) throw new Error(`${path} no longer dispatches with ${fromSource}: update the bench`);
          return { contents: source.replace(fromSource, fromBundle), loader: 'ts' };
        });
      },
    }],
  });
  mkdirSync(`${dir}/bin`);
  writeFileSync(`${dir}/bin/nspawn-runner`, nodeEntryPoint, { mode: 0o755 });
  return { name: 'node 20, dist/', executable: `${dir}/bin/nspawn-runner` };
}



/** Runs each of fns once per round, first one first on even rounds and last one first on odd ones. */
function alternate(rounds: number, fns: Array<(round: number) => void>): void {
  for (let round = 0; round < rounds; round++) {
    for (const fn of round % 2 ? [...fns].reverse() : fns) fn(round);
  }
}

const ms = (value: number) => value.toFixed(1).padStart(8);
const ratio = (value: number) => `${value.toFixed(2)}x`.padStart(7);

interface Floor { node: number; bun: number; nspawn: number; nsenter: number }

/** What a stage costs with no nspawn-runner at all. */
function measureFloor(root: string, product: Runtime): Floor {
  const times: Record<keyof Floor, number[]> = { node: [], bun: [], nspawn: [], nsenter: [] };
  const upper = `${root}/.floor-upper`;
  const image = `${root}/busybox`;
  const env = { ...process.env, CUSTOM_ENV_CI_JOB_ID: 'floor' };
  timed([product.executable, '--root', root, 'prepare', 'busybox'], env);
  const leader = (JSON.parse(readFileSync(`${root}/.jobs/floor/job.json`, 'utf8')) as { leaderPid: number }).leaderPid;
  alternate(runs, [
    () => times.node.push(timed(['node', '-e', '0'])),
    () => times.bun.push(timed([bun, '-e', '0'])),
    () => {
      rmSync(upper, { recursive: true, force: true });
      mkdirSync(upper);
      times.nspawn.push(timed(['systemd-nspawn', '--quiet', '--register=no', '--keep-unit', `--directory=${image}`,
        `--overlay=${image}:${upper}:/`, '--console=pipe', '--', 'true']));
    },
    () => times.nsenter.push(timed(['nsenter', `--target=${leader}`, '--all', '--root', '--wd', '--', 'true'])),
  ]);
  timed([product.executable, '--root', root, 'cleanup'], env);
  rmSync(upper, { recursive: true, force: true });
  return { node: median(times.node), bun: median(times.bun), nspawn: median(times.nspawn), nsenter: median(times.nsenter) };
}

type Stage = 'config' | 'prepare' | 'run' | 'cleanup';
const stages: Stage[] = ['config', 'prepare', 'run', 'cleanup'];

/** Medians per runtime and stage: config, prepare, run, cleanup of one job, each runtime in turn. */
function measureStages(root: string, backend: string, runtimes: Runtime[]): Array<Record<Stage, number>> {
  const script = `${root}/.true.sh`;
  writeFileSync(script, 'true\n');
  const times = runtimes.map(() => ({ config: [] as number[], prepare: [] as number[], run: [] as number[], cleanup: [] as number[] }));
  alternate(runs, runtimes.map((runtime, index) => (round: number) => {
    const env = { ...process.env, CUSTOM_ENV_CI_JOB_ID: `bench-${index}-${round}`, BUILD_FAILURE_EXIT_CODE: '1', SYSTEM_FAILURE_EXIT_CODE: '2' };
    const base = [runtime.executable, '--root', root, '--backend', backend];
    times[index]!.config.push(timed([...base, 'gitlab-config'], env));
    times[index]!.prepare.push(timed([...base, 'prepare', 'busybox'], env));
    times[index]!.run.push(timed([...base, 'run', script, 'build_script'], env));
    times[index]!.cleanup.push(timed([...base, 'cleanup'], env));
  }));
  return times.map((byStage) => Object.fromEntries(stages.map((stage) => [stage, median(byStage[stage])])) as Record<Stage, number>);
}

function stageTable(backend: string, [node, product]: Array<Record<Stage, number>>, floor: Floor): string[] {
  const rows: Array<[string, number, number, number | undefined, string]> = [
    ['config', node!.config, product!.config, 0.3, '-'],
    ['prepare', node!.prepare, product!.prepare, undefined, `nspawn ${floor.nspawn.toFixed(1)}`],
    ['run (true)', node!.run, product!.run, 0.5, `nsenter ${floor.nsenter.toFixed(1)}`],
    ['cleanup', node!.cleanup, product!.cleanup, undefined, '-'],
    ['prepare + cleanup', node!.prepare + node!.cleanup, product!.prepare + product!.cleanup, 0.7, `nspawn ${floor.nspawn.toFixed(1)}`],
  ];
  const lines = [`${backend}:`, `  ${''.padEnd(18)} ${'node ms'.padStart(8)} ${'bun ms'.padStart(8)} ${'bun/node'.padStart(8)}  target        raw floor ms`];
  for (const [name, nodeMs, bunMs, target, raw] of rows) {
    const verdict = target === undefined ? ''.padEnd(12) : `<= ${target.toFixed(1)}x ${bunMs / nodeMs <= target ? 'met ' : 'MISS'}`;
    lines.push(`  ${name.padEnd(18)} ${ms(nodeMs)} ${ms(bunMs)} ${ratio(bunMs / nodeMs).padStart(8)}  ${verdict}  ${raw}`);
  }
  return lines;
}

/** The gitlab-runner binary the tests use, or one on PATH. */
function findGitlabRunner(): string | undefined {
  const given = args['gitlab-runner'] ?? process.env.NSPAWN_RUNNER_TEST_GITLAB_RUNNER;
  if (given) return String(given);
  const cache = '/var/cache/nspawn-runner-tests';
  const cached = existsSync(cache) ? readdirSync(cache).filter((name) => name.startsWith('gitlab-runner-'))
    .map((name) => `${cache}/${name}/gitlab-runner`).find((path) => existsSync(path)) : undefined;
  if (cached) return cached;
  const found = spawnSync('sh', ['-c', 'command -v gitlab-runner'], { encoding: 'utf8' }).stdout.trim();
  return found || undefined;
}

/** Our [[runners]] section, as `toml` prints it for that installation, pointed at the coordinator. */
function customRunner(runtime: Runtime, root: string, coordinator: Coordinator): Record<string, unknown> {
  const printed = execFileSync(runtime.executable, ['toml', '--root', root, '--default-image', 'busybox'], { encoding: 'utf8' });
  const [section] = (parse(printed) as { runners: Array<Record<string, unknown>> }).runners;
  return { ...JSON.parse(JSON.stringify(section)) as Record<string, unknown>, name: runtime.name, url: coordinator.url, token: coordinator.runnerToken };
}

interface JobTimes {
  /** run-single, from its start to its exit. */
  wall: number;
  /** At the coordinator, from handing the job out to its final state: the job's duration as GitLab shows it. */
  job: number;
}

/** One job through run-single; throws unless the job succeeded. */
async function timedJob(binary: string, runner: Record<string, unknown>, coordinator: Coordinator, dir: string): Promise<JobTimes> {
  const job = coordinator.enqueue({ script: ['echo one line'], variables: { GIT_STRATEGY: 'none' } });
  // The coordinator sets state when it hands the job out and at the final update: note when.
  const stamps: Partial<Record<string, bigint>> = {};
  let state = job.state;
  Object.defineProperty(job, 'state', {
    get: () => state,
    set: (value: typeof state) => { state = value; stamps[value] ??= process.hrtime.bigint(); },
  });
  writeFileSync(`${dir}/config.toml`, stringify({ concurrent: 1, check_interval: 1, runners: [runner] }));
  const argv = ['run-single', '--config', `${dir}/config.toml`, '--runner', String(runner.name), '--max-builds', '1', '--wait-timeout', '30'];
  const start = process.hrtime.bigint();
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(binary, argv, { cwd: dir, env: { ...process.env, HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    child.on('error', reject);
    child.on('close', () => resolve(text));
  });
  const end = process.hrtime.bigint();
  if (job.state !== 'success') throw new Error(`${runner.name}: job ${job.payload.id} ended ${job.state}:\n${output}\n${job.trace}`);
  return { wall: Number(end - start) / 1e6, job: Number(stamps.success! - stamps.running!) / 1e6 };
}

async function measureJobs(binary: string, root: string, runtimes: Runtime[], work: string): Promise<string[]> {
  // Job ids name machines (run-<id>): far from the ones the tests use.
  const coordinator = await Coordinator.start(800_000_000 + (process.pid % 1000) * 1000);
  try {
    mkdirSync(`${work}/shell/builds`, { recursive: true });
    mkdirSync(`${work}/shell/cache`, { recursive: true });
    const shell = {
      name: 'shell executor', url: coordinator.url, token: coordinator.runnerToken, executor: 'shell', shell: 'bash',
      builds_dir: `${work}/shell/builds`, cache_dir: `${work}/shell/cache`,
    };
    const runners = [shell, ...runtimes.map((runtime) => customRunner(runtime, root, coordinator))];
    const times = runners.map(() => [] as JobTimes[]);
    const dir = mkdtempSync(`${work}/glr-`);
    for (let round = 0; round < jobRuns; round++) {
      const order = runners.map((_, index) => index);
      for (const index of round % 2 ? order.reverse() : order) times[index]!.push(await timedJob(binary, runners[index]!, coordinator, dir));
    }
    const medians = times.map((samples) => ({ wall: median(samples.map((t) => t.wall)), job: median(samples.map((t) => t.job)) }));
    const shellMs = medians[0]!;
    const version = spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout.match(/^Version:\s*(\S+)/m)?.[1] ?? '?';
    const lines = [
      `whole one-line job through gitlab-runner ${version} run-single (GIT_STRATEGY none, busybox image), medians of ${jobRuns}, alternating:`,
      `  ${''.padEnd(33)} ${'run-single'.padStart(10)} ${'/shell'.padStart(7)}   ${'job'.padStart(8)} ${'/shell'.padStart(7)}   (job: handed out to final state, at the coordinator)`,
    ];
    medians.forEach((value, index) => {
      const name = index === 0 ? 'gitlab-runner\'s shell executor' : `nspawn-runner, ${runtimes[index - 1]!.name}`;
      const target = index === medians.length - 1
        ? `   target <= 0.7x: ${value.wall / shellMs.wall <= 0.7 ? 'met' : 'MISS'} (run-single), ${value.job / shellMs.job <= 0.7 ? 'met' : 'MISS'} (job)` : '';
      lines.push(`  ${name.padEnd(33)} ${ms(value.wall)} ms ${ratio(value.wall / shellMs.wall)}   ${ms(value.job)} ms ${ratio(value.job / shellMs.job)}${target}`);
    });
    return lines;
  } finally {
    await coordinator.close();
  }
}

const work = mkdtempSync(`${tmpdir()}/nsr-bench-`);
let loop: string | undefined;
try {
  const node = await buildNodeBundles(`${work}/node`);
  const product: Runtime = { name: 'bun, from source', executable: `${repoRoot}/bin/nspawn-runner` };
  const runtimes = [node, product];
  const roots: Record<string, string> = {};
  const plain = `${work}/state`;
  mkdirSync(plain);
  makeBusyboxImage(`${plain}/busybox`);
  roots.overlay = roots.tmpfs = plain;
  if ((mode === 'stages' || mode === 'all') && backends.includes('btrfs')) {
    loop = `${work}/btrfs`;
    mkdirSync(`${loop}/mnt`, { recursive: true });
    execFileSync('truncate', ['-s', '1G', `${loop}/fs.img`]);
    execFileSync('mkfs.btrfs', ['-q', `${loop}/fs.img`], { stdio: 'ignore' });
    execFileSync('mount', ['-o', 'loop', `${loop}/fs.img`, `${loop}/mnt`]);
    if (isBtrfs(`${loop}/mnt`)) await createSubvolume(`${loop}/mnt/busybox`);
    makeBusyboxImage(`${loop}/mnt/busybox`);
    roots.btrfs = `${loop}/mnt`;
  }
  const bunVersion = execFileSync(bun, ['--version'], { encoding: 'utf8' }).trim();
  const lines = [`nspawn-runner bench, ${new Date().toISOString()}: ${execFileSync('node', ['--version'], { encoding: 'utf8' }).trim()} on esbuild bundles vs bun ${bunVersion} on the sources`];
  const floor = measureFloor(plain, product);
  lines.push('', `raw floor, medians of ${runs}:`,
    `  node -e 0 ${ms(floor.node)} ms   bun -e 0 ${ms(floor.bun)} ms   systemd-nspawn true (overlay) ${ms(floor.nspawn)} ms   nsenter true ${ms(floor.nsenter)} ms`);
  if (mode === 'stages' || mode === 'all') {
    lines.push('', `stages, busybox image, medians of ${runs}, the two runtimes alternating:`);
    for (const backend of backends) lines.push(...stageTable(backend, measureStages(roots[backend]!, backend, runtimes), floor));
  }
  if (mode === 'oci' || mode === 'all') {
    lines.push('', ...await measureOci({
      executable: product.executable, work, runs, largeRuns: Number(args['large-runs'] ?? 3), debianRoot,
    }));
  }
  if (mode === 'services' || mode === 'all') {
    lines.push('', ...measureServices({ executable: product.executable, root: plain, runs, nspawnFloor: floor.nspawn }));
  }
  if (mode === 'job' || mode === 'all') {
    const binary = findGitlabRunner();
    lines.push('', ...(binary ? await measureJobs(binary, plain, runtimes, work) : ['whole job: skipped, no gitlab-runner binary (--gitlab-runner PATH)']));
  }
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  if (loop) spawnSync('umount', ['--lazy', `${loop}/mnt`]);
  rmSync(work, { recursive: true, force: true });
}
