#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// status: the jobs this runner has right now.
import { main } from '../lib/cli.mts';
import { listJobStatus } from '../lib/job/gc.mts';
import { hostByName } from '../lib/host/select.mts';
import { writeAll } from '../lib/log.mts';
import { measureJob, type JobResources } from '../lib/job/resources.mts';

await main({
  name: 'status',
  summary: 'List jobs: id, image, storage backend, host mode, age, health (preparing, running, kept, orphaned),\n' +
    'machine, and until when a kept failed job stays (keep_failed) or "-".\n' +
    'One tab-separated row per job on stdout, or JSON with --json, which also has what each machine used so far.',
  usage: '[--json]',
  options: ['      --json             print JSON instead of rows'],
  boolean: ['json'],
}, async (args, settings) => {
  const jobs = await listJobStatus(settings);
  if (args.json) {
    const rows = await Promise.all(jobs.map(async ({ record, health, ageSeconds }) => {
      let resources: JobResources | null = null;
      if (health === 'running' || health === 'kept') {
        const leader = await (await hostByName(record.host)).leaderOf(record);
        if (leader) resources = measureJob(record, leader);
      }
      return {
        id: record.jobId, image: record.image, backend: record.backend, host: record.host,
        ageSeconds, health, machine: record.machine, keptUntil: record.keptUntil ?? null, resources,
      };
    }));
    writeAll(1, `${JSON.stringify(rows)}\n`);
    return;
  }
  const rows = jobs.map(({ record, health, ageSeconds }) =>
    [record.jobId, record.image, record.backend, record.host, `${ageSeconds}s`, health, record.machine, record.keptUntil ?? '-'].join('\t'));
  writeAll(1, rows.length ? `${rows.join('\n')}\n` : '');
});
