#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// status: the jobs this runner has right now.
import { main } from '../lib/cli.mts';
import { listJobStatus } from '../lib/job/gc.mts';
import { hostByName } from '../lib/host/select.mts';
import { writeAll } from '../lib/log.mts';
import { measureJob, type JobResources } from '../lib/job/resources.mts';
import type { JobRecord } from '../lib/job/record.mts';
import { serviceAsMachine } from '../lib/services/machines.mts';

await main({
  name: 'status',
  summary: 'List jobs: id, image, storage backend, host mode, age, health (preparing, running, kept, orphaned),\n' +
    'machine, and until when a kept failed job stays (keep_failed) or "-".\n' +
    'A job\'s services follow it, one row each: health service:STATE (running, stopped, failed), machine, host names.\n' +
    'One tab-separated row per job on stdout, or JSON with --json, which also has what each machine used so far.',
  usage: '[--json]',
  options: ['      --json             print JSON instead of rows'],
  boolean: ['json'],
}, async (args, settings) => {
  const jobs = await listJobStatus(settings);
  const services = await Promise.all(jobs.map(({ record }) => serviceStates(record)));
  if (args.json) {
    const rows = await Promise.all(jobs.map(async ({ record, health, ageSeconds }, index) => {
      let resources: JobResources | null = null;
      if (health === 'running' || health === 'kept') {
        const leader = await (await hostByName(record.host)).leaderOf(record);
        if (leader) resources = measureJob(record, leader);
      }
      return {
        id: record.jobId, image: record.image, backend: record.backend, host: record.host,
        ageSeconds, health, machine: record.machine, keptUntil: record.keptUntil ?? null, resources, services: services[index],
      };
    }));
    writeAll(1, `${JSON.stringify(rows)}\n`);
    return;
  }
  const rows = jobs.flatMap(({ record, health, ageSeconds }, index) => [
    [record.jobId, record.image, record.backend, record.host, `${ageSeconds}s`, health, record.machine, record.keptUntil ?? '-'].join('\t'),
    // Each service under its job: same columns, its state as "service:STATE", its host names last.
    ...services[index]!.map((service) =>
      [record.jobId, service.image, record.backend, record.host, '-', `service:${service.state}`, service.machine, service.hostNames.join(',')].join('\t')),
  ]);
  writeAll(1, rows.length ? `${rows.join('\n')}\n` : '');
});

/** A job's services and whether each machine runs. */
async function serviceStates(record: JobRecord): Promise<Array<{ image: string; machine: string; hostNames: string[]; state: string }>> {
  if (!record.services?.length) return [];
  const host = await hostByName(record.host);
  return Promise.all(record.services.map(async (service) => ({
    image: service.image,
    machine: service.machine,
    hostNames: service.hostNames,
    state: service.failed ? 'failed' : (await host.leaderOf(serviceAsMachine(record, service))) ? 'running' : 'stopped',
  })));
}
