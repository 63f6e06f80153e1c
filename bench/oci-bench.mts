// OCI images in the bench, against a registry on loopback, each figure next
// to its floor measured in the same run:
// - a cold pull (nspawn-runner oci-pull into an empty store) against its
//   floor: the pull's own skopeo and umoci command lines run by hand;
// - a warm prepare on a pulled image (if-not-present, and always, which asks
//   the registry) against a prepare on a local image;
// - disk: two images sharing a base layer, the blobs stored against the sum
//   of both images' blobs.
// The Debian test image is measured too when it is cached (pushed once with
// chroot-push); it takes a few runs of tens of seconds.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { buildPullArgs, buildUnpackArgs } from '../lib/oci/skopeo.mts';
import { buildTestImages, type PushedImage } from '../test/support/oci-images.mts';
import { Registry } from '../test/support/registry.mts';
import { median, timed } from './timing.mts';

export interface OciBenchOptions {
  executable: string;
  work: string;
  runs: number;
  /** Runs for the large (Debian) image, whose pulls take long. */
  largeRuns: number;
  /** A state directory holding the Debian test image, if there is one. */
  debianRoot: string | undefined;
}


function bytesIn(dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + statSync(`${dir}/${name}`).size, 0);
}

const format = (ms: number) => `${ms.toFixed(1).padStart(8)} ms`;

/**
 * Lets the event loop read the registry's access log (test/support/
 * registry.mts): the runs themselves block it (spawnSync), and a registry
 * whose log pipe is full stops answering, the run waiting on it forever.
 */
const drainRegistryLog = () => new Promise((resolve) => setTimeout(resolve, 10));

export async function measureOci(options: OciBenchOptions): Promise<string[]> {
  const { executable, work } = options;
  const registry = await Registry.start();
  const lines: string[] = [];
  try {
    const images = buildTestImages(registry, 'bench');
    const config = `${work}/oci.conf`;
    writeFileSync(config, 'oci:\n  enabled: true\n  insecure_registries: ["127.0.0.1:*"]\n  allowed_pull_policies: [always, if-not-present]\n');
    const runner = (root: string, ...args: string[]) => [executable, '--root', root, '--config', config, ...args];

    // The floor runs what a pull runs, by hand: the same skopeo and umoci
    // command lines (lib/oci/skopeo.mts builds both), without our start-up,
    // locks, digest request and bookkeeping. `umoci unpack` into a bundle,
    // as the issue words it, also writes an mtree manifest of the whole tree,
    // which a pull does not: shown beside it, not used as the floor.
    const access = { insecure: true, authFile: undefined, timeoutSeconds: 3600 };
    const cold = async (image: PushedImage, runs: number, label: string): Promise<void> => {
      const floor: number[] = [];
      const bundle: number[] = [];
      const ours: number[] = [];
      for (let i = 0; i < runs; i++) {
        const dir = `${work}/cold-${i}`;
        const floorRun = (): void => {
          mkdirSync(`${dir}/tree`, { recursive: true });
          execFileSync('sync');
          floor.push(timed(buildPullArgs(`docker://${image.reference}`, `${dir}/layout`, 'image', access)) +
            timed(buildUnpackArgs(`${dir}/layout`, 'image', `${dir}/tree`)));
          rmSync(dir, { recursive: true, force: true });
        };
        const bundleRun = (): void => {
          mkdirSync(dir, { recursive: true });
          execFileSync('sync');
          bundle.push(timed(['skopeo', 'copy', '--quiet', '--src-tls-verify=false', '--', `docker://${image.reference}`, `oci:${dir}/layout:image`]) +
            timed(['umoci', 'unpack', `--image=${dir}/layout:image`, '--', `${dir}/bundle`]));
          rmSync(dir, { recursive: true, force: true });
        };
        const oursRun = (): void => {
          mkdirSync(`${dir}/state`, { recursive: true });
          execFileSync('sync');
          ours.push(timed(runner(`${dir}/state`, 'oci-pull', image.reference)));
          rmSync(dir, { recursive: true, force: true });
        };
        // In turns, each after a sync: none pays for another's writeback, or always goes first.
        const order = [floorRun, oursRun, bundleRun];
        for (let turn = 0; turn < order.length; turn++) {
          order[(i + turn) % order.length]!();
          await drainRegistryLog();
        }
      }
      const [hand, asWorded, pulled] = [median(floor), median(bundle), median(ours)];
      lines.push(`  ${`${label}: skopeo copy + umoci raw unpack`.padEnd(52)} ${format(hand)}   (the floor: a pull's own command lines)`);
      lines.push(`  ${`${label}: skopeo copy + umoci unpack (bundle)`.padEnd(52)} ${format(asWorded)}   ${(asWorded / hand).toFixed(2)}x`);
      lines.push(`  ${`${label}: nspawn-runner oci-pull (cold)`.padEnd(52)} ${format(pulled)}   ${(pulled / hand).toFixed(2)}x`);
    };

    lines.push(`OCI images (registry on loopback; medians of ${options.runs} runs, ${options.largeRuns} for the Debian image):`, '', 'cold pull against the tools by hand:');
    await cold(images.busybox, options.runs, 'busybox (1 MiB)');
    let debian: PushedImage | undefined;
    if (options.debianRoot && existsSync(`${options.debianRoot}/bookworm/usr/bin/bash`)) {
      const pushRoot = `${work}/push-state`;
      mkdirSync(pushRoot, { recursive: true });
      symlinkSync(`${options.debianRoot}/bookworm`, `${pushRoot}/bookworm`);
      const push = runner(pushRoot, 'chroot-push', 'bookworm', `${registry.host}/bench/bookworm:1`);
      const pinned = execFileSync(push[0]!, push.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      debian = { reference: pinned.split('@')[0]!, digest: pinned.split('@')[1]! };
      rmSync(pushRoot, { recursive: true, force: true });
      await cold(debian, options.largeRuns, 'Debian bookworm (chroot-push)');
    }

    // Warm prepares: the same state directory, an image pulled before, and a local image.
    const state = `${work}/warm-state`;
    mkdirSync(state, { recursive: true });
    const { makeBusyboxImage } = await import('../test/support/images.mts');
    makeBusyboxImage(`${state}/busybox`);
    timed(runner(state, 'oci-pull', images.busybox.reference));
    const prepares = async (image: string, file?: string): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < options.runs; i++) {
        const env = { ...process.env, CUSTOM_ENV_CI_JOB_ID: `bench-oci-${i}`, BUILD_FAILURE_EXIT_CODE: '1', SYSTEM_FAILURE_EXIT_CODE: '2',
          ...(file ? { JOB_RESPONSE_FILE: file } : {}) };
        times.push(timed(runner(state, 'prepare', ...(file ? [] : [image])), env));
        timed(runner(state, 'cleanup'), env);
        await drainRegistryLog();
      }
      return median(times);
    };
    const jobFile = (policy: string): string => {
      const path = `${work}/job-${policy}.json`;
      writeFileSync(path, JSON.stringify({ image: { name: images.busybox.reference, pull_policy: [policy] } }));
      return path;
    };
    const local = await prepares('busybox');
    const warm = await prepares(images.busybox.reference, jobFile('if-not-present'));
    const always = await prepares(images.busybox.reference, jobFile('always'));
    lines.push('', 'warm prepare (overlay, direct host), against a local image:');
    lines.push(`  ${'local image busybox'.padEnd(52)} ${format(local)}`);
    lines.push(`  ${'pulled busybox, pull_policy if-not-present'.padEnd(52)} ${format(warm)}   ${(warm / local).toFixed(2)}x`);
    lines.push(`  ${'pulled busybox, pull_policy always'.padEnd(52)} ${format(always)}   ${(always / local).toFixed(2)}x`);

    // Disk: busybox, then env (busybox's layer plus a small one), into an empty store.
    const disk = `${work}/disk-state`;
    mkdirSync(disk, { recursive: true });
    timed(runner(disk, 'oci-pull', images.busybox.reference));
    const afterFirst = bytesIn(`${disk}/.oci/blobs/sha256`);
    timed(runner(disk, 'oci-pull', images.env.reference));
    const afterSecond = bytesIn(`${disk}/.oci/blobs/sha256`);
    const shared = statSync(`${disk}/.oci/blobs/sha256/${images.baseLayer.slice('sha256:'.length)}`).size;
    lines.push('', 'disk: two images sharing their base layer (blob bytes in <root>/.oci/blobs):');
    lines.push(`  ${'busybox alone'.padEnd(52)} ${String(afterFirst).padStart(11)} B`);
    lines.push(`  ${'busybox and env (env adds one small layer)'.padEnd(52)} ${String(afterSecond).padStart(11)} B`);
    lines.push(`  ${'both, were the base layer stored twice'.padEnd(52)} ${String(afterSecond + shared).padStart(11)} B   (base layer ${shared} B, stored once)`);
    rmSync(state, { recursive: true, force: true });
    rmSync(disk, { recursive: true, force: true });
  } finally {
    await registry.close();
  }
  return lines;
}
