// A systemd host for the tests. This machine has no systemd as PID 1, but it
// can boot a Debian image with systemd inside a machine, and systemd-nspawn
// and machined work nested inside that one: a real "systemd host", made in a
// second. The image is the cached Debian test image plus systemd-container,
// cached next to it. Each suite boots its own copy-on-write instance with
// this repository (read-only, same path), the node binary and a state
// directory bound in, and runs nspawn-runner inside it from a stand-in for
// gitlab-runner.service (runner-agent.mjs); inspection commands use nsenter.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { removeTree } from '../../lib/mounts.mts';
import { createOwnCgroups, removeCgroups } from './cgroups.mts';
import { childrenOf, commandNameOf, isRunning, signal, sleep, waitForExit } from '../../lib/proc.mts';
import { debianImage, debianRoot, ensureDebianImage } from './images.mts';
import { buildFailure, systemFailure, type RunnerResult } from './runner.mts';
import { testCache } from './test-cache.mts';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const cacheDir = `${testCache}/systemd-host`;
/** What the cached image is made of; a change rebuilds it. */
const recipe = { base: debianImage, packages: ['systemd-container', 'procps', 'btrfs-progs'] };

/** Inside the test host: the runner's state directory and the stage scripts. */
export const innerRoot = '/var/lib/nspawn-runner';
export const innerScripts = '/srv/nsr-scripts';
/** The unit of the gitlab-runner stand-in inside the test host. */
const runnerService = 'nsr-test-runner.service';
const innerPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const innerEnv = { PATH: innerPath, HOME: '/root', LANG: 'C.UTF-8' };
/** Where the stand-in's socket lives: bound read-write, so this side can connect. */
const innerAgentDir = '/srv/nsr-agent';

function nspawnTool(args: string[], input?: string): void {
  execFileSync('systemd-nspawn', ['--quiet', '--register=no', '--keep-unit', '--console=pipe', ...args],
    { stdio: [input === undefined ? 'ignore' : 'pipe', 'inherit', 'inherit'], input, env: { PATH: innerPath, SYSTEMD_LOG_LEVEL: 'warning' } });
}

/** The test host's image, built from the cached Debian image when missing or outdated. */
export async function ensureSystemdHostImage(): Promise<string> {
  const image = `${cacheDir}/image`;
  const stamp = `${cacheDir}/recipe.json`;
  const wanted = `${JSON.stringify(recipe)}\n`;
  if (existsSync(`${image}/usr/bin/machinectl`) && existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted) return image;
  await ensureDebianImage();
  mkdirSync(cacheDir, { recursive: true });
  const staging = `${cacheDir}/.staging-${process.pid}`;
  await removeTree(staging);
  // A copy: the cached Debian image is shared with other suites and stays untouched.
  // It is a symlink into the versioned store (.images/): copy what it points at.
  execFileSync('cp', ['-a', '--reflink=auto', '--', `${debianRoot}/${debianImage}/.`, staging]);
  try {
    const apt = ['--directory', staging, '--setenv=DEBIAN_FRONTEND=noninteractive', '--', 'apt-get', '-q', '-y'];
    nspawnTool([...apt, 'update']);
    nspawnTool([...apt, '--no-install-recommends', 'install', ...recipe.packages]);
    nspawnTool([...apt, 'clean']);
  } catch (error) {
    await removeTree(staging);
    throw new Error(`cannot build the systemd test host image (apt-get in the Debian test image needs its package mirror): ${(error as Error).message}`);
  }
  if (existsSync(image)) {
    const old = `${cacheDir}/.old-${process.pid}`;
    renameSync(image, old);
    await removeTree(old);
  }
  renameSync(staging, image);
  writeFileSync(stamp, wanted);
  return image;
}

/** node and the libraries it links that the image lacks, bound in read-only at the same paths. */
function nodeBinds(image: string): string[] {
  const libraries = execFileSync('ldd', [process.execPath], { encoding: 'utf8' })
    .split('\n').map((line) => /(\/\S+) \(0x/.exec(line)?.[1]).filter((path): path is string => Boolean(path));
  return [process.execPath, ...libraries.filter((path) => !existsSync(`${image}${path}`))]
    .map((path) => `--bind-ro=${path}`);
}

/**
 * pasta (Debian's passt), the way out of a job's services network
 * (lib/services/pod.mts): this machine's, bound in read-only where the image
 * lacks it. It links libc only. Installing it in the image would change the
 * recipe, and every checkout sharing the cache with an older recipe would
 * rebuild the image under the others. pasta re-executes itself as
 * <its path>.avx2 where the CPU has AVX2.
 */
function pastaBinds(image: string): string[] {
  return ['/usr/bin/pasta', '/usr/bin/pasta.avx2'].filter((path) => existsSync(path) && !existsSync(`${image}${path}`))
    .map((path) => `--bind-ro=${realpathSync(path)}:${path}`);
}

export interface ExecOptions {
  env?: Record<string, string>;
  input?: string;
}

export interface Inventory {
  machines: string[];
  units: string[];
  processes: string[];
  cgroups: string[];
  mounts: string[];
  propagate: string[];
  /** Runtime drop-ins (systemctl set-property --runtime), such as a job slice's limits. */
  dropIns: string[];
  jobDirs: string[];
}

export const nothingLeft: Inventory = { machines: [], units: [], processes: [], cgroups: [], mounts: [], propagate: [], dropIns: [], jobDirs: [] };

export interface TestHostOptions {
  /** Host directory to use as the runner's state directory (a btrfs mount, say); default: a fresh one. */
  state?: string;
  /** Bind the cached Debian image in as image "bookworm" (default), or leave the state directory alone. */
  bindDebianImage?: boolean;
  /** More images, bound in read-only: image name -> host path. */
  images?: Record<string, string>;
}

export class SystemdTestHost {
  readonly name = `nsr-systemd-host-${process.pid}`;
  /** Host-side directories: the instance's writes, the runner's state, the scripts. */
  readonly work = mkdtempSync(`${tmpdir()}/nsr-systemd-host-`);
  readonly state: string;
  readonly scripts = `${this.work}/scripts`;
  readonly log = `${this.work}/host.log`;
  private readonly agentSocket = `${this.work}/agent/socket`;
  private readonly bindDebianImage: boolean;
  private readonly images: Record<string, string>;
  private nspawn: ChildProcess | undefined;
  private leader: number | undefined;
  private cgroups: string[] = [];
  private readonly jobs = new Set<string>();
  private disposed = false;

  constructor(options: TestHostOptions = {}) {
    this.state = options.state ?? `${this.work}/state`;
    this.bindDebianImage = options.bindDebianImage ?? true;
    this.images = options.images ?? {};
  }

  /** Boots the test host; returns once its systemd has finished booting. */
  async boot(): Promise<void> {
    const image = await ensureSystemdHostImage();
    await ensureDebianImage();
    for (const dir of [`${this.work}/upper`, `${this.work}/agent`, this.state, this.scripts]) mkdirSync(dir, { recursive: true });
    if (this.bindDebianImage) mkdirSync(`${this.state}/${debianImage}`, { recursive: true });
    for (const name of Object.keys(this.images)) mkdirSync(`${this.state}/${name}`, { recursive: true });
    const argv = [
      'systemd-nspawn', '--quiet', '--register=no', '--keep-unit', `--machine=${this.name}`,
      `--directory=${image}`, `--overlay=${image}:${this.work}/upper:/`, '--link-journal=no',
      ...nodeBinds(image),
      ...pastaBinds(image),
      `--bind-ro=${repoRoot}`,
      `--bind=${this.state}:${innerRoot}`,
      // Jobs inside boot the cached Debian image, read-only under their overlays.
      ...(this.bindDebianImage ? [`--bind-ro=${realpathSync(`${debianRoot}/${debianImage}`)}:${innerRoot}/${debianImage}`] : []),
      ...Object.entries(this.images).map(([name, path]) => `--bind-ro=${path}:${innerRoot}/${name}`),
      `--bind-ro=${this.scripts}:${innerScripts}`,
      `--bind=${this.work}/agent:${innerAgentDir}`,
      // Every capability, as a real host has: machines inside get at most
      // what their host has, and a privileged job gets them all.
      '--capability=all',
      '--boot', '--console=read-only',
    ];
    this.cgroups = createOwnCgroups(this.name);
    // nspawn has to start in the test host's cgroups: join them, then exec it.
    const join = ['sh', '-c', 'for dir in $NSR_CGROUPS; do echo $$ > "$dir/cgroup.procs" || exit 1; done; exec "$@"', 'sh'];
    const logFd = openSync(this.log, 'a');
    this.nspawn = spawn(join[0]!, [...join.slice(1), ...argv], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      // The unified cgroup hierarchy inside, as on current systemd hosts
      // (this machine itself mounts cgroup v1 controllers). No seccomp filter
      // on the test host, as on a real one: machines inside inherit it.
      env: { PATH: innerPath, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1', SYSTEMD_SECCOMP: '0', NSR_CGROUPS: this.cgroups.join(' ') },
    });
    closeSync(logFd);
    this.leader = await this.waitForLeader(60_000);
    await this.waitForBoot(60_000);
    await this.startAgent(10_000);
  }

  /** The stand-in for gitlab-runner.service that runner() goes through (runner-agent.mjs). */
  private async startAgent(timeoutMs: number): Promise<void> {
    const agent = fileURLToPath(new URL('runner-agent.mjs', import.meta.url));
    const service = await this.exec(['systemd-run', '--quiet', `--unit=${runnerService}`, '--', process.execPath, agent, `${innerAgentDir}/socket`]);
    if (service.code !== 0) throw new Error(`cannot start ${runnerService} in the test host: ${service.stderr}`);
    const deadline = Date.now() + timeoutMs;
    // The socket file exists from bind() on, but connections are refused until listen().
    while (!existsSync(this.agentSocket) || !(await this.agentAccepts())) {
      if (Date.now() > deadline) throw new Error(`${runnerService} did not come up in the test host`);
      await sleep(20);
    }
  }

  private agentAccepts(): Promise<boolean> {
    return new Promise((resolve) => {
      const probe = connect(this.agentSocket, () => {
        probe.destroy();
        resolve(true);
      });
      probe.on('error', () => resolve(false));
    });
  }

  /**
   * systemctl --wait waits for the end of the boot, but only once systemd has
   * made /run/systemd/system ("offline" before) and its bus socket.
   */
  private async waitForBoot(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const booted = await this.exec(['timeout', '60', 'systemctl', 'is-system-running', '--wait']);
      if (/^(running|degraded)/.test(booted.stdout)) return;
      if (Date.now() > deadline) {
        throw new Error(`test host did not boot (${booted.stdout.trim()} ${booted.stderr.trim()}); see ${this.log}`);
      }
      await sleep(50);
    }
  }

  /** Waits until the unit is no longer active, e.g. after killing it behind the runner's back. */
  async waitUntilInactive(unit: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (/^(active|deactivating|activating|reloading)$/.test(await this.unitProperty(unit, 'ActiveState'))) {
      if (Date.now() > deadline) throw new Error(`${unit} is still active`);
      await sleep(20);
    }
  }

  private async waitForLeader(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    const pid = this.nspawn!.pid!;
    while (Date.now() < deadline && isRunning(pid)) {
      const leader = childrenOf(pid).find((child) => commandNameOf(child) === 'systemd');
      if (leader) return leader;
      await sleep(20);
    }
    throw new Error(`test host did not start: ${readFileSync(this.log, 'utf8').trim().split('\n').slice(-5).join(' / ')}`);
  }

  /** Runs argv inside the test host, with a clean environment plus env. */
  exec(argv: string[], options: ExecOptions = {}): Promise<RunnerResult> {
    if (!this.leader) throw new Error('the test host is not running');
    const env = Object.entries({ ...innerEnv, ...options.env }).map(([key, value]) => `${key}=${value}`);
    const full = ['nsenter', `--target=${this.leader}`, '--all', '--root', '--wd', '--', 'env', '-i', ...env, ...argv];
    return new Promise((resolve, reject) => {
      const child = spawn(full[0]!, full.slice(1), { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      if (options.input !== undefined) child.stdin!.end(options.input);
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  }

  /** bin/nspawn-runner inside the test host, started by the gitlab-runner stand-in as gitlab-runner would. */
  runner(args: string[], env: Record<string, string> = {}): Promise<RunnerResult> {
    return this.command([`${repoRoot}/bin/nspawn-runner`, '--root', innerRoot, ...args], env);
  }

  /**
   * Any command inside the test host, started by the gitlab-runner stand-in
   * with gitlab-runner's exit-code variables; ms is its wall time there.
   */
  command(argv: string[], env: Record<string, string> = {}): Promise<RunnerResult & { ms: number }> {
    const request = {
      argv,
      env: { ...innerEnv, BUILD_FAILURE_EXIT_CODE: String(buildFailure), SYSTEM_FAILURE_EXIT_CODE: String(systemFailure), ...env },
    };
    return new Promise((resolve, reject) => {
      const result = { code: -1, stdout: '', stderr: '', ms: NaN };
      let pending = '';
      const connection = connect(this.agentSocket, () => connection.write(`${JSON.stringify(request)}\n`));
      connection.setEncoding('utf8');
      connection.on('data', (chunk: string) => {
        pending += chunk;
        for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
          const message = JSON.parse(pending.slice(0, end)) as { stdout?: string; stderr?: string; code?: number; ms?: number };
          pending = pending.slice(end + 1);
          result.stdout += message.stdout ?? '';
          result.stderr += message.stderr ?? '';
          if (message.code !== undefined) result.code = message.code;
          if (message.ms !== undefined) result.ms = message.ms;
        }
      });
      connection.on('error', reject);
      connection.on('close', () => resolve(result));
    });
  }

  /**
   * The same, started from outside the test host through nsenter: its parent
   * lives in another PID namespace, so getppid() is 0 and its owner unknown.
   */
  runnerFromOutside(args: string[]): Promise<RunnerResult> {
    return this.exec([`${repoRoot}/bin/nspawn-runner`, '--root', innerRoot, ...args]);
  }

  /** Started by a go-between that exits right after it, as a gitlab-runner that crashed: the job's owner is gone. */
  runnerWithDeadOwner(args: string[], env: Record<string, string> = {}): Promise<RunnerResult> {
    return this.exec(['perl', '-e', 'exit(system(@ARGV) >> 8)', `${repoRoot}/bin/nspawn-runner`, '--root', innerRoot, ...args], { env });
  }

  prepare(jobId: string, image = debianImage, args: string[] = [], env: Record<string, string> = {}): Promise<RunnerResult> {
    this.jobs.add(jobId);
    return this.runner([...args, 'prepare', '--id', jobId, image], env);
  }

  /** Writes body as a stage script and runs it in the job's machine. */
  stage(jobId: string, stage: string, body: string, env: Record<string, string> = {}, args: string[] = []): Promise<RunnerResult> {
    writeFileSync(`${this.scripts}/${jobId}-${stage}`, `${body}\n`, { mode: 0o700 });
    return this.runner([...args, 'run', '--id', jobId, `${innerScripts}/${jobId}-${stage}`, stage], env);
  }

  cleanup(jobId: string, args: string[] = []): Promise<RunnerResult> {
    return this.runner([...args, 'cleanup', '--id', jobId]);
  }

  /** A property of a unit inside the test host, as `systemctl show` prints it. */
  async unitProperty(unit: string, property: string): Promise<string> {
    return (await this.exec(['systemctl', 'show', `--property=${property}`, '--value', '--', unit])).stdout.trim();
  }

  /** Everything of nspawn-runner's that could be left inside the test host. */
  async inventory(): Promise<Inventory> {
    const lines = async (argv: string[]): Promise<string[]> =>
      (await this.exec(argv)).stdout.split('\n').map((line) => line.trim()).filter(Boolean);
    let jobDirs: string[] = [];
    try {
      jobDirs = execFileSync('ls', ['-A', `${this.state}/.jobs`], { encoding: 'utf8' }).split('\n').filter(Boolean);
    } catch {
      // no jobs directory: nothing left
    }
    return {
      machines: await lines(['machinectl', 'list', '--no-legend']),
      // Units of machines, and the slices of jobs with services (host/systemd-slice.mts) with theirs in them.
      units: await lines(['systemctl', 'list-units', '--all', '--plain', '--no-legend', 'nspawn-runner-*', 'machine-nspawn*']),
      processes: (await lines(['ps', '-eo', 'args', '--no-headers'])).filter((line) => /systemd-nspawn|nsr-marker|nsenter|pasta/.test(line)),
      cgroups: await lines(['find', '/sys/fs/cgroup', '-maxdepth', '3', '(', '-name', 'nspawn-runner-*', '-o', '-name', 'machine-nspawn*', ')']),
      mounts: (await lines(['cat', '/proc/mounts'])).filter((line) => line.includes(`${innerRoot}/.jobs`)),
      propagate: await lines(['find', '/run/systemd/nspawn/propagate', '-mindepth', '1', '-maxdepth', '1']),
      dropIns: await lines(['find', '/run/systemd/system.control', '-mindepth', '1', '-maxdepth', '1']),
      jobDirs,
    };
  }

  /** Cleans every job, kills the test host (and whatever runs nested in it), removes its files. Safe to repeat. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    if (this.leader && isRunning(this.leader)) {
      for (const jobId of this.jobs) await this.cleanup(jobId).catch(() => undefined);
      // SIGKILL to its PID 1 ends the whole PID namespace, nested machines included.
      signal(this.leader, 'SIGKILL');
    }
    const pid = this.nspawn?.pid;
    if (pid && !(await waitForExit(pid, undefined, 10_000))) {
      signal(pid, 'SIGKILL');
      await waitForExit(pid, undefined, 5_000);
    }
    this.leader = undefined;
    removeCgroups(this.cgroups);
    await removeTree(this.work);
  }
}
