// A sample CI job driven through every stage exactly as gitlab-runner's
// custom executor drives it: config, prepare, one run per stage with the
// script in a file and the stage name, cleanup at the end whatever happened.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { zx } from './exec.mts';
import { log } from './log.mts';

export interface SampleJobOptions {
  /** bin/nspawn-runner of this installation. */
  executable: string;
  globalArgs: string[];
  image: string;
  jobId: string;
}

/** Stage name and bash script, in the order gitlab-runner runs them. */
export const sampleStages: ReadonlyArray<readonly [string, string]> = [
  ['prepare_script', 'echo "Running on $(hostname): $(. /etc/os-release; echo "$PRETTY_NAME")"'],
  ['get_sources', [
    'set -e',
    'mkdir -p "$BUILDS_DIR/sample" && cd "$BUILDS_DIR/sample"',
    'git init -q . && printf "int main(void) { return 0; }\\n" > main.c',
    'git -c user.name=ci -c user.email=ci@example.invalid add main.c',
    'git -c user.name=ci -c user.email=ci@example.invalid commit -qm "sample sources"',
    'git log --oneline',
  ].join('\n')],
  ['build_script', [
    'set -e',
    'cd "$BUILDS_DIR/sample"',
    'echo "a background service keeps running into later stages:"',
    '(while true; do date +%s > /tmp/heartbeat; sleep 1; done) &',
    'echo $! > /tmp/service.pid',
    'wc -c main.c > build.log && cat build.log',
  ].join('\n')],
  ['after_script', [
    'set -e',
    'cd "$BUILDS_DIR/sample"',
    'kill -0 "$(cat /tmp/service.pid)" && echo "service from build_script still alive (pid $(cat /tmp/service.pid))"',
    'cat build.log',
  ].join('\n')],
];

/** Returns the exit code of the job: 0 when every stage passed. */
export async function runSampleJob(options: SampleJobOptions): Promise<number> {
  const scriptsDir = mkdtempSync(`${tmpdir()}/nspawn-runner-sample-`);
  const env = {
    ...process.env,
    CUSTOM_ENV_CI_JOB_ID: options.jobId,
    CUSTOM_ENV_CI_JOB_IMAGE: options.image,
    BUILD_FAILURE_EXIT_CODE: '1',
    SYSTEM_FAILURE_EXIT_CODE: '2',
  };
  const $ = await zx();
  const runner = $({ env, stdio: ['ignore', 'inherit', 'inherit'], nothrow: true });
  const nspawnRunner = (...args: string[]) => runner`${options.executable} ${options.globalArgs} ${args}`;
  try {
    const config = await $({ env, nothrow: true })`${options.executable} ${options.globalArgs} gitlab-config`;
    if (config.exitCode !== 0) return config.exitCode ?? 1;
    const { builds_dir: buildsDir } = JSON.parse(config.stdout) as { builds_dir: string };
    log.info(`config: ${config.stdout.trim()}`);
    const prepared = await nspawnRunner('prepare');
    if (prepared.exitCode !== 0) return prepared.exitCode ?? 1;
    let verdict = 0;
    for (const [stage, body] of sampleStages) {
      if (verdict !== 0 && stage !== 'after_script') continue;
      const script = `${scriptsDir}/script-${stage}`;
      writeFileSync(script, `#!/usr/bin/env bash\nexport BUILDS_DIR=${buildsDir}\n${body}\n`, { mode: 0o700 });
      log.info(`--- stage ${stage}`);
      const result = await nspawnRunner('run', script, stage);
      if (result.exitCode !== 0 && verdict === 0) verdict = result.exitCode ?? 1;
    }
    log.info(verdict === 0 ? 'job succeeded' : `job failed with exit code ${verdict}`);
    return verdict;
  } finally {
    await nspawnRunner('cleanup');
    rmSync(scriptsDir, { recursive: true, force: true });
  }
}
