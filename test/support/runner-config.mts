// The [[runners]] section under test is the one our `toml` command prints,
// pointed at the test coordinator: the configuration users get.
import { parse } from 'smol-toml';
import { runner } from './runner.mts';

export interface CustomSection {
  config_exec: string;
  config_args?: string[];
  prepare_exec: string;
  prepare_args?: string[];
  run_exec: string;
  run_args?: string[];
  cleanup_exec: string;
  cleanup_args?: string[];
  graceful_kill_timeout?: number;
  force_kill_timeout?: number;
}

export interface RunnerSection {
  name: string;
  url: string;
  token: string;
  executor: string;
  builds_dir: string;
  cache_dir: string;
  custom: CustomSection;
}

/** globalArgs such as --config FILE end up in every stage's arguments, as for users. */
export async function runnerSection(root: string, url: string, token: string, defaultImage: string, globalArgs: string[] = []): Promise<RunnerSection> {
  const printed = await runner(['toml', '--root', root, ...globalArgs, '--default-image', defaultImage]);
  if (printed.code !== 0) throw new Error(`nspawn-runner toml failed: ${printed.stderr}`);
  const { runners } = parse(printed.stdout) as unknown as { runners: RunnerSection[] };
  // A plain object again: smol-toml's tables have no prototype.
  return { ...JSON.parse(JSON.stringify(runners[0])) as RunnerSection, url, token };
}
