// What every doctor check gets: the settings as loaded (bad keys left at
// their defaults), the problems found loading them, and how to find and run
// the host's programs.
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import type { SystemError } from '../errors.mts';
import { run, type RunResult } from '../exec.mts';
import type { Settings } from '../settings.mts';
import { chooseBackendName } from '../storage/select.mts';

export interface DoctorContext {
  settings: Readonly<Settings>;
  /** The configuration file in use, and what was wrong in it (or in NSPAWN_RUNNER_* variables). */
  configFile: string;
  configProblems: readonly SystemError[];
  /** gitlab-runner's config.toml. */
  runnerConfig: string;
  /** bin/nspawn-runner of this installation, as config.toml should name it. */
  executable: string;
  /** PATH to look programs up in. */
  path: string;
}

/** The first executable file called name in path, like `command -v`. */
export function findProgram(name: string, path: string): string | undefined {
  for (const dir of path.split(':')) {
    if (!dir.startsWith('/')) continue;
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      if (statSync(`${dir}/${name}`).isFile()) return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Runs a program that may be missing or broken: the result, or undefined when it could not start. */
export async function tryRun(argv: string[], path: string): Promise<RunResult | undefined> {
  const program = findProgram(argv[0]!, path);
  if (!program) return undefined;
  try {
    return await run([program, ...argv.slice(1)], { env: { ...process.env, PATH: path, LANG: 'C.UTF-8' } });
  } catch {
    return undefined;
  }
}

/** The path, or the nearest directory above it that exists (prepare creates the state directory). */
export function existingAncestor(path: string): string {
  let dir = path;
  while (!existsSync(dir)) dir = dir.slice(0, dir.lastIndexOf('/')) || '/';
  return dir;
}

/** The backend prepare will choose, judged by where the state directory will be. Throws as prepare would. */
export function backendFor(settings: Readonly<Settings>): string {
  return chooseBackendName({ ...settings, root: existingAncestor(settings.root) });
}
