// State directories for image maintenance tests: Debian images copied (with
// reflinks where the filesystem has them) from caches kept on the machine
// across runs, so only the tests about creation pay for a bootstrap; and a
// fixture whose config directory (the playbooks) is its own.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { StateFixture } from './fixture.mts';
import { debianImage, debianRoot, ensureDebianImage } from './images.mts';
import { runner, type RunnerOptions, type RunnerResult } from './runner.mts';
import { testCache } from './test-cache.mts';

/** A cached i386 Debian image (minimal packages), made with chroot-create --arch=i386 when missing. */
export const i386Root = `${testCache}/i386`;
export const i386Image = 'bookworm-i386';

export async function ensureI386Image(): Promise<void> {
  if (existsSync(`${i386Root}/${i386Image}/usr/bin/dash`)) return;
  mkdirSync(i386Root, { recursive: true });
  const result = await runner(['--root', i386Root, 'chroot-create', '--suite', 'bookworm', '--arch', 'i386', i386Image],
    { stream: true, env: { NSPAWN_RUNNER_CONFIG_DIR: `${i386Root}/no-playbooks` } });
  if (result.code !== 0) throw new Error(`cannot create the i386 test image (exit ${result.code})`);
}

/** Copies a cached image's tree into root/name as a plain directory, as an admin's hand-made image. */
export function copyTree(source: string, target: string): void {
  execFileSync('cp', ['-a', '--reflink=auto', '--no-target-directory', '--', realpathSync(source), target]);
}

export async function copyDebianImage(root: string, name: string): Promise<void> {
  await ensureDebianImage();
  copyTree(`${debianRoot}/${debianImage}`, `${root}/${name}`);
}

export async function copyI386Image(root: string, name: string): Promise<void> {
  await ensureI386Image();
  copyTree(`${i386Root}/${i386Image}`, `${root}/${name}`);
}

/** A state directory with its own config directory for playbooks; every command sees both. */
export class ImageState extends StateFixture {
  readonly configDir: string;

  constructor(parent = '/var/tmp', extraArgs: string[] = []) {
    // /var/tmp, not /tmp: images are hundreds of MiB.
    super(mkdtempSync(`${parent}/nsr-images-`), extraArgs);
    this.configDir = mkdtempSync(`${tmpdir()}/nsr-playbooks-`);
  }

  override run(args: string[], options: RunnerOptions = {}): Promise<RunnerResult> {
    return super.run(args, { ...options, env: { NSPAWN_RUNNER_CONFIG_DIR: this.configDir, ...options.env } });
  }

  writePlaybook(name: string, text: string): string {
    const path = `${this.configDir}/${name}.yaml`;
    writeFileSync(path, text);
    return path;
  }

  /** chroot-list --json, parsed. */
  async list(): Promise<ImageRowLike[]> {
    const result = await this.run(['chroot-list', '--json']);
    if (result.code !== 0) throw new Error(`chroot-list failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as ImageRowLike[];
  }

  async row(name: string): Promise<ImageRowLike> {
    const row = (await this.list()).find((candidate) => candidate.name === name);
    if (!row) throw new Error(`chroot-list has no image ${name}`);
    return row;
  }

  /** Runs one stage and returns its stdout, failing loudly when the stage fails. */
  async output(jobId: string, body: string): Promise<string> {
    const result = await this.stage(jobId, 'build_script', body);
    if (result.code !== 0) throw new Error(`stage of job ${jobId} failed (${result.code}): ${result.stdout}${result.stderr}`);
    return result.stdout;
  }

  override async dispose(removeRoot = true): Promise<void> {
    await super.dispose(false);
    rmSync(this.configDir, { recursive: true, force: true });
    // rm deletes empty subvolumes too (Linux >= 4.18), so btrfs states need nothing special.
    if (removeRoot) rmSync(this.root, { recursive: true, force: true });
  }
}

/** The fields of chroot-list --json that tests look at. */
export interface ImageRowLike {
  name: string;
  path: string;
  layout: string;
  tree: string | null;
  version: string | null;
  storage: string | null;
  sizeBytes: number | null;
  personality: string | null;
  playbook: string | null;
  created: { suite: string; bootstrapper: string; packages: string[]; at: string; version: string } | null;
  lastMaintenance: { ok: boolean; how: string; error?: string; version?: string } | null;
  jobs: Array<{ jobId: string; tree: string }>;
  versions: string[];
}
