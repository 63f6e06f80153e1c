#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// cleanup_exec: stops the job's machine and removes everything it left.
import { main } from '../lib/cli.mts';
import { jobIdFromEnv } from '../lib/contract.mts';
import { parseJobId } from '../lib/job/record.mts';
import { keepFailedJob } from '../lib/job/keep-failed.mts';
import { cleanupJob } from '../lib/job/machine.mts';
import { processSeconds, recordEvent } from '../lib/metrics/events.mts';

await main({
  name: 'cleanup',
  summary: "Stop the job's machine, kill its processes, delete its writable layer and bookkeeping.\n" +
    'Returns when the machine is gone. Cleaning a job that never started, or twice, succeeds.\n' +
    'With keep_failed, a job whose build failed is kept instead; cleaning a kept job removes it.',
  usage: '[--id ID]',
  options: ['      --id ID            job id (default $CUSTOM_ENV_CI_JOB_ID)'],
  string: ['id'],
  needsRoot: true,
}, async (args, settings) => {
  const jobId = parseJobId(args.id ?? jobIdFromEnv());
  try {
    if (!(await keepFailedJob(settings, jobId))) await cleanupJob(settings, jobId);
  } catch (error) {
    recordEvent(settings.root, 'cleanup_failed', 1);
    throw error;
  }
  recordEvent(settings.root, 'cleanup_seconds', processSeconds());
});
