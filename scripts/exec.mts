#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// exec: run a project's .gitlab-ci.yml jobs locally, in the machines CI uses.
import { main } from '../lib/cli.mts';
import { execPipeline } from '../lib/ci-local/exec.mts';
import { setLogLevel } from '../lib/log.mts';

await main({
  name: 'exec',
  summary: 'Run the jobs of the .gitlab-ci.yml of the git checkout here, each in a fresh machine\n' +
    '(same images, storage and settings as CI jobs): the named jobs, a stage, or the whole pipeline.',
  usage: '[--list [--json]] [--needs] [--stage S] [--concurrency N] [--dirty] [--variable K=V]... [JOB...]',
  options: [
    '      --list             list the pipeline\'s jobs (stage, when, allow_failure, needs); no root needed',
    '      --json             with --list: as JSON',
    '      --needs            with JOBs: also the jobs they need, transitively',
    '      --stage S          the jobs of stage S',
    '      --manual JOB       also run manual job JOB (repeatable); named JOBs always run',
    '      --concurrency N    jobs at once (default 1)',
    '      --dirty            jobs get the working tree, uncommitted changes included (default: HEAD)',
    '      --variable K=V     a variable above every other (repeatable)',
    '      --file F           the configuration file (default .gitlab-ci.yml)',
    '      --cwd DIR          the checkout (default: the current directory)',
    '      --default-image N  image of jobs without image: (default: default_image, else bookworm)',
  ],
  string: ['stage', 'concurrency', 'file', 'cwd', 'default-image'],
  boolean: ['list', 'json', 'needs', 'dirty'],
  repeatable: ['variable', 'manual'],
}, async (args, settings) => {
  // Machines starting and stopping are exec's business, not the developer's.
  if (!args.verbose && !args.debug) setLogLevel('warn');
  return execPipeline(settings, {
    cwd: args.cwd ?? process.cwd(),
    file: args.file ?? '.gitlab-ci.yml',
    selection: { jobs: args._.map(String), needs: args.needs, stage: args.stage, manual: args.manual },
    list: args.list,
    json: args.json,
    concurrency: Number(args.concurrency ?? 1),
    dirty: args.dirty,
    variables: args.variable,
    defaultImage: args['default-image'],
  });
});
