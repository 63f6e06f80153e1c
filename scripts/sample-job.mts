#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// sample-job: the README's first command. Runs a sample CI job through every
// stage on the default image, creating that image first if it is missing.
import { existsSync, realpathSync } from 'node:fs';
import { main } from '../lib/cli.mts';
import { imagePath } from '../lib/image.mts';
import { runSampleJob } from '../lib/sample-job.mts';
import { ensureRunnerDirs } from '../lib/machine.mts';
import { createImage } from '../lib/maintenance.mts';

await main({
  name: 'sample-job',
  summary: 'Run a sample CI job (prepare_script, get_sources, build_script, after_script) through\n' +
    'config, prepare, run and cleanup, as gitlab-runner does. Creates the image first if missing.',
  usage: '[--image NAME] [--suite SUITE] [--id ID]',
  options: [
    '      --image NAME       image to run on (default bookworm)',
    '      --suite SUITE      suite to bootstrap the image from when missing (default: the image name)',
    '      --id ID            job id (default: sample-<pid>)',
  ],
  string: ['image', 'suite', 'id'],
  needsRoot: true,
}, async (args, settings) => {
  const image = args.image ?? settings.defaultImage ?? 'bookworm';
  ensureRunnerDirs(settings);
  if (!existsSync(imagePath(settings, image))) {
    await createImage(settings, image, { suite: args.suite ?? image });
  }
  const globalArgs = [`--root=${settings.root}`, ...(args.verbose ? ['--verbose'] : []), ...(args.debug ? ['--debug'] : [])];
  if (args.config) globalArgs.push(`--config=${args.config}`);
  return runSampleJob({
    executable: realpathSync(new URL('../bin/nspawn-runner', import.meta.url)),
    globalArgs,
    image,
    jobId: args.id ?? `sample-${process.pid}`,
  });
});
