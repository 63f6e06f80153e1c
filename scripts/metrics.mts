#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// metrics: Prometheus text exposition of the runner's jobs, stage durations,
// images and gc removals, for node_exporter's textfile collector (contrib/).
import { renameSync, writeFileSync } from 'node:fs';
import { main } from '../lib/cli.mts';
import { writeAll } from '../lib/log.mts';
import { collectMetrics } from '../lib/metrics/collect.mts';
import { renderFamilies } from '../lib/metrics/exposition.mts';

await main({
  name: 'metrics',
  summary: 'Print Prometheus text exposition: jobs by health, prepare and cleanup duration histograms and\n' +
    'failures, images with size and age, gc removals. With --output, write it to FILE atomically\n' +
    '(for node_exporter\'s textfile collector: see contrib/nspawn-runner-metrics.timer).',
  usage: '[--output FILE] [--no-size]',
  options: [
    '      --output FILE      write to FILE (through a temporary file and a rename) instead of stdout',
    '      --no-size          do not measure image sizes (du) that are not known yet',
  ],
  string: ['output'],
  boolean: ['size'],
  needsRoot: true,
}, async (args, settings) => {
  // minimist reads --no-size as size: false, and a boolean left out as false too: ask argv.
  const withSize = !process.argv.includes('--no-size');
  const text = renderFamilies(await collectMetrics(settings, { withSize }));
  if (!args.output) {
    writeAll(1, text);
    return;
  }
  // The collector must never read half a file.
  const output = String(args.output);
  writeFileSync(`${output}.${process.pid}.tmp`, text, { mode: 0o644 });
  renameSync(`${output}.${process.pid}.tmp`, output);
});
