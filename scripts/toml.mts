#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// toml: prints the config.toml snippet that points gitlab-runner at us.
import { realpathSync } from 'node:fs';
import { stringify } from 'smol-toml';
import { main } from '../lib/cli.mts';
import { writeAll } from '../lib/log.mts';
import { buildRunnerToml } from '../lib/runner-toml.mts';

await main({
  name: 'toml',
  summary: 'Print a [[runners]] section for /etc/gitlab-runner/config.toml that uses this installation.\n' +
    'Fill in url and token (or register the runner and copy its [runners.custom] part).',
  usage: '[--default-image NAME]',
  options: ['      --default-image N  image for jobs that name none (default: bookworm)'],
  string: ['default-image'],
}, async (args, settings) => {
  const executable = realpathSync(new URL('../bin/nspawn-runner', import.meta.url));
  const globalArgs = args.root ? [`--root=${settings.root}`] : [];
  if (args.config) globalArgs.push(`--config=${args.config}`);
  const defaultImage = args['default-image'] ?? settings.defaultImage ?? 'bookworm';
  writeAll(1, stringify(buildRunnerToml(settings, { executable, defaultImage, globalArgs })) + '\n');
});
