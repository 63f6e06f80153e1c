#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// chroot-list: every image with its storage, size, maintenance and jobs, on stdout.
import { main } from '../lib/cli.mts';
import { formatImageTable, listImages } from '../lib/image-list.mts';
import { writeAll } from '../lib/log.mts';

await main({
  name: 'chroot-list',
  summary: 'List the images: image directories and playbooks in the config and state directories.\n' +
    'For each: storage, size, last maintenance, playbook, running jobs and path.',
  usage: '[--json] [--no-size]',
  options: [
    '      --json             print a JSON array instead of a table (fields: see README.md)',
    '      --no-size          skip measuring each image (du), which reads every file',
  ],
  // minimist reads --no-size as size=false; naming it here makes it a known option.
  boolean: ['json', 'no-size'],
}, async (args, settings) => {
  const rows = await listImages(settings, args.size !== false);
  writeAll(1, args.json ? `${JSON.stringify(rows, null, 1)}\n` : formatImageTable(rows));
});
