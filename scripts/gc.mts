#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// gc: removes what crashed jobs left behind, never touching a live job.
import { main } from '../lib/cli.mts';
import { collectGarbage } from '../lib/job/gc.mts';
import { log, writeAll } from '../lib/log.mts';

await main({
  name: 'gc',
  summary: 'Find machines, mounts, writable layers, job records and half-made images that no live job\n' +
    'owns (runner killed, host rebooted, cleanup never came) and remove them. Live jobs are left alone.\n' +
    'Pulled OCI images unused for oci.gc_unused_after go too, with the blobs no image needs.\n' +
    'Every prepare runs the cheap part of this first. Safe to run from a timer (contrib/).',
  usage: '[--json]',
  options: ['      --json             print what was removed as JSON on stdout'],
  boolean: ['json'],
  needsRoot: true,
}, async (args, settings) => {
  const report = await collectGarbage(settings);
  if (args.json) writeAll(1, `${JSON.stringify(report)}\n`);
  log.info(`gc: ${report.jobs.length} orphaned job(s), ${report.strayMachines.length} stray machine(s), ` +
    `${report.staging.length} half-made image(s), ${report.versions.length} unused image version(s), ` +
    `${report.shifted.length} uid-shifted image cop(ies), ${report.oci.images.length} pulled image(s), ` +
    `${report.oci.blobs} blob(s) (${report.oci.blobBytes} bytes), ${report.oci.staging.length} killed pull(s) removed`);
});
