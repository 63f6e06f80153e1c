#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// status: the jobs this runner has right now.
import { main } from '../lib/cli.mts';
import { listJobStatus } from '../lib/gc.mts';
import { writeAll } from '../lib/log.mts';

await main({
  name: 'status',
  summary: 'List jobs: id, image, storage backend, host mode, age, health (preparing, running, orphaned), machine.\n' +
    'One tab-separated row per job on stdout, or JSON with --json.',
  usage: '[--json]',
  options: ['      --json             print JSON instead of rows'],
  boolean: ['json'],
}, async (args, settings) => {
  const jobs = await listJobStatus(settings);
  if (args.json) {
    writeAll(1, `${JSON.stringify(jobs.map(({ record, health, ageSeconds }) => ({
      id: record.jobId, image: record.image, backend: record.backend, host: record.host,
      ageSeconds, health, machine: record.machine,
    })))}\n`);
    return;
  }
  const rows = jobs.map(({ record, health, ageSeconds }) =>
    [record.jobId, record.image, record.backend, record.host, `${ageSeconds}s`, health, record.machine].join('\t'));
  writeAll(1, rows.length ? `${rows.join('\n')}\n` : '');
});
