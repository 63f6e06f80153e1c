#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// oci-list: the pulled OCI images, on stdout.
import { main } from '../lib/cli.mts';
import { writeAll } from '../lib/log.mts';
import { formatPulledTable, listPulledImages } from '../lib/oci/gc.mts';

await main({
  name: 'oci-list',
  summary: 'List the pulled OCI images: references, digest, size, last use and running jobs.\n' +
    'gc removes those unused for oci.gc_unused_after.',
  usage: '[--json] [--no-size]',
  options: [
    '      --json             print a JSON array instead of a table (fields: see README.md)',
    '      --no-size          skip measuring each image (du), which reads every file',
  ],
  boolean: ['json', 'no-size'],
}, async (args, settings) => {
  const rows = await listPulledImages(settings, args.size !== false);
  writeAll(1, args.json ? `${JSON.stringify(rows, null, 1)}\n` : formatPulledTable(rows));
});
