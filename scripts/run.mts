#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// run_exec: runs one stage's script inside the job's machine.
import { main } from '../lib/cli.mts';
import { jobIdFromEnv } from '../lib/contract.mts';
import { UsageError } from '../lib/errors.mts';
import { parseJobId } from '../lib/job.mts';
import { runStage } from '../lib/machine.mts';

await main({
  name: 'run',
  summary: "Run a stage's script with bash inside the job's machine, streaming its output.\n" +
    'Exits 0, $BUILD_FAILURE_EXIT_CODE when the script failed, $SYSTEM_FAILURE_EXIT_CODE when the machine did.',
  usage: '[--id ID] [--shell SHELL] SCRIPT [STAGE]',
  options: [
    '      --id ID            job id (default $CUSTOM_ENV_CI_JOB_ID)',
    '      --shell SHELL      shell inside the machine that runs SCRIPT (default /bin/bash)',
  ],
  string: ['id', 'shell'],
  needsRoot: true,
}, async (args, settings) => {
  const [scriptPath, stage = 'script'] = args._.map(String);
  if (!scriptPath) throw new UsageError('run: missing SCRIPT');
  const jobId = parseJobId(args.id ?? jobIdFromEnv());
  await runStage(settings, { jobId, scriptPath, stage, shell: args.shell ?? '/bin/bash' });
});
