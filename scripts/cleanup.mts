#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// cleanup_exec: stops the job's machine and removes everything it left.
import { main } from '../lib/cli.mts';
import { jobIdFromEnv } from '../lib/contract.mts';
import { parseJobId } from '../lib/job.mts';
import { cleanupJob } from '../lib/machine.mts';

await main({
  name: 'cleanup',
  summary: "Stop the job's machine, kill its processes, delete its writable layer and bookkeeping.\n" +
    'Returns when the machine is gone. Cleaning a job that never started, or twice, succeeds.',
  usage: '[--id ID]',
  options: ['      --id ID            job id (default $CUSTOM_ENV_CI_JOB_ID)'],
  string: ['id'],
  needsRoot: true,
}, async (args, settings) => {
  await cleanupJob(settings, parseJobId(args.id ?? jobIdFromEnv()));
});
