#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// config_exec: prints the JSON gitlab-runner reads. Nothing else on stdout.
import { main } from '../lib/cli.mts';
import { buildExecutorConfig } from '../lib/contract.mts';
import { writeAll } from '../lib/log.mts';

await main({
  name: 'gitlab-config',
  summary: "config_exec for gitlab-runner's custom executor: prints builds/cache dirs and driver info as JSON",
  usage: '',
}, async (_args, settings) => {
  writeAll(1, `${JSON.stringify(buildExecutorConfig(settings))}\n`);
});
