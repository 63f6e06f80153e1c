// Side by side on a systemd host: nspawn-runner against the original Python
// nspawn-runner (../shared/original), both driven as gitlab-runner drives
// them, in one booted systemd test host (test/support/systemd-host.mts),
// overlay storage for both, on the cached Debian test image. Each round
// times, for each executor, prepare / run `true` / cleanup of one job, then
// a 9-stage job end to end; which executor goes first alternates every
// round. Commands start from the test host's gitlab-runner stand-in, which
// times them from spawn to exit. Prints medians and ratios; asserts nothing.
//
//   npm run bench:systemd -- [--rounds N] [--original PATH]
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, dirname } from 'node:path';
import minimist from 'minimist';
import { innerRoot, innerScripts, repoRoot, SystemdTestHost } from '../test/support/systemd-host.mts';
import { median } from './timing.mts';

const args = minimist(process.argv.slice(2), { string: ['rounds', 'original'], boolean: ['help'] });
if (args.help) {
  process.stdout.write('usage: npm run bench:systemd -- [--rounds N] [--original PATH]\n' +
    'Times prepare, run (`true`), cleanup and a 9-stage job: nspawn-runner against the original, in a booted systemd test host.\n');
  process.exit(0);
}
const rounds = Number(args.rounds ?? 15);
const originalPath = String(args.original ?? `${repoRoot}/../shared/original/nspawn-runner`);

/** The stages gitlab-runner runs for a job with a script, in order (NOTES.md). */
const nineStages = [
  'prepare_script', 'get_sources', 'restore_cache', 'download_artifacts', 'step_script',
  'after_script', 'archive_cache', 'upload_artifacts_on_success', 'cleanup_file_variables',
];

type Name = 'original' | 'ours';

interface Executor {
  name: Name;
  argv: string[];
}

const executors: Record<Name, Executor> = {
  // bin/nspawn-runner, whatever runtime it starts.
  ours: { name: 'ours', argv: [`${repoRoot}/bin/nspawn-runner`, '--root', innerRoot, '--backend', 'overlay'] },
  // Its state directory is fixed at /var/lib/nspawn-runner (innerRoot), and
  // it picks overlay storage itself there: the test host's is not btrfs.
  original: { name: 'original', argv: ['python3', `${innerScripts}/original`] },
};

const samples = new Map<string, number[]>();
const record = (key: string, ms: number): void => void samples.set(key, [...(samples.get(key) ?? []), ms]);


const host = new SystemdTestHost();

async function timed(executor: Executor, jobId: string, command: string[]): Promise<number> {
  const result = await host.command([...executor.argv, ...command], { CUSTOM_ENV_CI_JOB_ID: jobId });
  if (result.code !== 0) throw new Error(`${executor.name} ${command.join(' ')} (job ${jobId}) failed with ${result.code}: ${result.stderr.trim()}`);
  return result.ms;
}

/** How long after now the job's machine is still registered with machined (sd_get_machine_names(3) reads this directory). */
async function goneAfter(jobId: string): Promise<number> {
  const wait = await host.command(['sh', '-c', 'while [ -e "/run/systemd/machines/$1" ]; do sleep 0.001; done', 'sh', `run-${jobId}`]);
  return wait.ms;
}

async function singleJob(executor: Executor, jobId: string): Promise<void> {
  record(`${executor.name} prepare`, await timed(executor, jobId, ['prepare', 'bookworm']));
  record(`${executor.name} run`, await timed(executor, jobId, ['run', `${innerScripts}/true.sh`, 'step_script']));
  record(`${executor.name} cleanup`, await timed(executor, jobId, ['cleanup']));
  record(`${executor.name} gone`, await goneAfter(jobId));
}

async function nineStageJob(executor: Executor, jobId: string): Promise<void> {
  let total = await timed(executor, jobId, ['prepare', 'bookworm']);
  for (const stage of nineStages) total += await timed(executor, jobId, ['run', `${innerScripts}/${stage}.sh`, stage]);
  total += await timed(executor, jobId, ['cleanup']);
  record(`${executor.name} job`, total);
  await goneAfter(jobId);
}

/** The program bin/nspawn-runner execs (node, bin/bun, ...), as named on its exec line. */
function runtimeOf(entry: string): string {
  const program = /^exec (\S+)/m.exec(readFileSync(entry, 'utf8'))?.[1]?.replace(/^"|"$/g, '') ?? 'node';
  return program.replace(/^\$here\b/, dirname(entry));
}

/** The runtime bin/nspawn-runner starts, and python3, each doing nothing: what a stage costs before any work. */
async function floors(): Promise<void> {
  const runtime = runtimeOf(`${repoRoot}/bin/nspawn-runner`);
  for (const [name, argv] of [[`${basename(runtime)} -e 0`, [runtime, '-e', '0']], ['python3 -c 0', ['python3', '-c', '0']], ['true', ['true']]] as const) {
    const result = await host.command([...argv]);
    if (result.code === 0) record(`floor ${name}`, result.ms);
  }
}

try {
  await host.boot();
  copyFileSync(originalPath, `${host.scripts}/original`);
  writeFileSync(`${host.scripts}/true.sh`, 'true\n');
  for (const stage of nineStages) writeFileSync(`${host.scripts}/${stage}.sh`, `: ${stage}\n`);
  // One untimed job each: caches warm, images checked.
  await singleJob(executors.ours, 'warm-n');
  await singleJob(executors.original, 'warm-o');
  samples.clear();
  for (let round = 0; round < rounds; round++) {
    const order: Executor[] = round % 2 ? [executors.original, executors.ours] : [executors.ours, executors.original];
    for (const executor of order) await singleJob(executor, `${executor.name[0]}${round}a`);
    await floors();
    for (const executor of order) await nineStageJob(executor, `${executor.name[0]}${round}b`);
    // The original's units stay loaded, failed: keep the host's unit table small.
    await host.exec(['systemctl', 'reset-failed']);
    process.stderr.write(`round ${round + 1}/${rounds} done\n`);
  }
  const m = (key: string): number => median(samples.get(key) ?? [NaN]);
  const row = (step: string, original: string, ours: string, ratio: number): string => `| ${step} | ${original} | ${ours} | ${ratio.toFixed(2)} |`;
  const ms = (value: number): string => value.toFixed(0);
  const lines = [
    `nspawn-runner against the original on a systemd host: medians of ${rounds} rounds in ms, overlay storage, ` +
      `Debian bookworm image, load average ${loadavg().map((load) => load.toFixed(1)).join(' ')}, ${new Date().toISOString()}`,
    '',
    '| step | original | ours | ours/original |',
    '|---|---|---|---|',
    row('prepare', ms(m('original prepare')), ms(m('ours prepare')), m('ours prepare') / m('original prepare')),
    row('run (`true`)', ms(m('original run')), ms(m('ours run')), m('ours run') / m('original run')),
    row('cleanup', `${ms(m('original cleanup'))} (gone ${ms(m('original gone'))} ms later)`,
      `${ms(m('ours cleanup'))} (gone ${ms(m('ours gone'))} ms later)`, m('ours cleanup') / m('original cleanup')),
    row('9-stage job, end to end', ms(m('original job')), ms(m('ours job')), m('ours job') / m('original job')),
    '',
    'floor (a process doing nothing, started the same way):',
    ...[...samples.keys()].filter((key) => key.startsWith('floor ')).map((key) => `  ${key.slice(6).padEnd(14)} ${ms(m(key)).padStart(5)} ms`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  await host.dispose();
}
