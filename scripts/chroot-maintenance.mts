#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// chroot-maintenance: brings every image with a playbook (or the named ones)
// up to date. Meant for a systemd timer (contrib/).
import { main } from '../lib/cli.mts';
import { SystemError } from '../lib/errors.mts';
import { log } from '../lib/log.mts';
import { maintainImages } from '../lib/maintenance.mts';

await main({
  name: 'chroot-maintenance',
  summary: 'For every image with a playbook, or just the NAMEs given: create it if missing, recreate it when\n' +
    'the playbook sets nspawn_runner_maint_recreate, then run the playbook. Each update is made on a new\n' +
    'version that goes into service only when the playbook succeeded; running jobs keep theirs.\n' +
    'A failing image does not stop the others; the exit status is 0 only when all succeeded.',
  usage: '[NAME...]',
  needsRoot: true,
}, async (args, settings) => {
  const report = await maintainImages(settings, args._.map(String));
  const total = report.succeeded.length + report.failed.length;
  if (report.failed.length) {
    throw new SystemError(`maintenance failed for ${report.failed.length} of ${total} image(s): ${report.failed.join(', ')}`,
      'see the errors above');
  }
  if (total) log.info(`maintenance done: ${report.succeeded.join(', ')}`);
});
