// A throw-away state directory with a busybox image, and a job helper that
// always cleans up: every test registers its jobs and after() removes them
// even when an assertion failed halfway.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createSubvolume, isBtrfs } from '../../lib/btrfs.mts';
import { makeBusyboxImage } from './images.mts';
import { runner, type RunnerOptions, type RunnerResult } from './runner.mts';

export class StateFixture {
  readonly root: string;
  readonly scripts: string;
  private readonly jobs = new Set<string>();
  private readonly extraArgs: string[];

  constructor(root: string, extraArgs: string[] = []) {
    this.root = root;
    this.scripts = mkdtempSync(`${tmpdir()}/nsr-scripts-`);
    this.extraArgs = extraArgs;
  }

  /** A busybox image in a new state directory (under parent, default the temp dir). */
  static async withBusybox(extraArgs: string[] = [], parent = tmpdir()): Promise<StateFixture> {
    const fixture = new StateFixture(mkdtempSync(`${parent}/nsr-state-`), extraArgs);
    if (isBtrfs(fixture.root)) await createSubvolume(`${fixture.root}/busybox`);
    makeBusyboxImage(`${fixture.root}/busybox`);
    return fixture;
  }

  run(args: string[], options: RunnerOptions = {}): Promise<RunnerResult> {
    return runner(['--root', this.root, ...this.extraArgs, ...args], options);
  }

  prepare(jobId: string, image = 'busybox', options: RunnerOptions = {}, args: string[] = []): Promise<RunnerResult> {
    this.jobs.add(jobId);
    return this.run(['prepare', ...args, '--id', jobId, image], options);
  }

  /** Writes body as a stage script and runs it in the job's machine. */
  stage(jobId: string, stage: string, body: string, options: RunnerOptions = {}): Promise<RunnerResult> {
    const script = `${this.scripts}/${jobId}-${stage}`;
    writeFileSync(script, `${body}\n`, { mode: 0o700 });
    return this.run(['run', '--id', jobId, script, stage], options);
  }

  cleanup(jobId: string): Promise<RunnerResult> {
    return this.run(['cleanup', '--id', jobId]);
  }

  /** Cleans every job this fixture prepared, then removes the state directory. */
  async dispose(removeRoot = true): Promise<void> {
    for (const jobId of this.jobs) await this.cleanup(jobId);
    rmSync(this.scripts, { recursive: true, force: true });
    if (removeRoot) rmSync(this.root, { recursive: true, force: true });
  }
}
