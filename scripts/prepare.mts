#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// prepare_exec: starts the job's machine and returns when it can run commands.
import { main } from '../lib/cli.mts';
import { jobIdFromEnv, jobImageSpecFromEnv, jobVariableFromEnv } from '../lib/contract.mts';
import { SystemError } from '../lib/errors.mts';
import { sweepOrphanedJobs } from '../lib/job/gc.mts';
import { parseJobId } from '../lib/job/record.mts';
import { isKeptJob } from '../lib/job/keep-failed.mts';
import { log } from '../lib/log.mts';
import { cleanupJob, ensureRunnerDirs } from '../lib/job/machine.mts';
import { prepareJob } from '../lib/job/prepare.mts';
import { processSeconds, recordEvent } from '../lib/metrics/events.mts';
import { jobServicesFromEnv } from '../lib/services/spec.mts';

await main({
  name: 'prepare',
  summary: 'Start a throw-away machine for a CI job, copy-on-write over an image.\n' +
    'The image is IMAGE, else the job\'s image: (JOB_RESPONSE_FILE, $CUSTOM_ENV_CI_JOB_IMAGE), else --default-image.\n' +
    'The job\'s services: (JOB_RESPONSE_FILE, $CUSTOM_ENV_CI_JOB_SERVICES) start beside it, each in a machine of its own.',
  usage: '[--id ID] [--default-image NAME] [IMAGE]',
  options: [
    '      --id ID            job id (default $CUSTOM_ENV_CI_JOB_ID)',
    '      --default-image N  image for jobs that name none',
  ],
  string: ['id', 'default-image'],
  needsRoot: true,
}, async (args, settings) => {
  const jobId = parseJobId(args.id ?? jobIdFromEnv());
  const jobImage = args._[0] === undefined ? jobImageSpecFromEnv() : undefined;
  const imageReference = args._[0] ?? jobImage?.name ?? args['default-image'] ?? settings.defaultImage;
  if (!imageReference) throw new SystemError('no image for this job', 'give the job an image:, or pass --default-image');
  ensureRunnerDirs(settings);
  try {
    // Cheap: job records only. A crashed job with this id is cleaned here too.
    await sweepOrphanedJobs(settings);
    if (isKeptJob(settings, jobId)) {
      log.info(`job ${jobId}: replacing the kept machine of an earlier job with this id`);
      await cleanupJob(settings, jobId);
    }
    await prepareJob(settings, {
      jobId, imageReference: String(imageReference), jobImage, jobAuthConfig: jobVariableFromEnv('DOCKER_AUTH_CONFIG'), services: jobServicesFromEnv(),
    });
  } catch (error) {
    recordEvent(settings.root, 'prepare_failed', 1);
    throw error;
  }
  recordEvent(settings.root, 'prepare_seconds', processSeconds());
});
