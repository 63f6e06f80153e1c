#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// oci-pull: pulls an OCI image into the store ahead of the jobs that use it.
import { main } from '../lib/cli.mts';
import { UsageError } from '../lib/errors.mts';
import { writeAll } from '../lib/log.mts';
import { obtainImage } from '../lib/oci/pull.mts';
import { formatReference, parseOciReference } from '../lib/oci/reference.mts';
import { parsePlatform } from '../lib/oci/platform.mts';
import { parseChoice, pullPolicies } from '../lib/settings.mts';

await main({
  name: 'oci-pull',
  summary: 'Pull and unpack an OCI image, as a job asking for it would (credentials from\n' +
    'oci.credentials_file). Prints REFERENCE@sha256:... on stdout.',
  usage: '[--pull-policy always|if-not-present] [--platform OS/ARCH] REFERENCE',
  options: [
    '      --pull-policy P    always (default: ask the registry) or if-not-present',
    '      --platform P       such as linux/386 (default: the host\'s)',
  ],
  string: ['pull-policy', 'platform'],
  needsRoot: true,
}, async (args, settings) => {
  if (args._[0] === undefined) throw new UsageError('oci-pull: missing REFERENCE');
  const reference = parseOciReference(String(args._[0]));
  const policy = parseChoice(args['pull-policy'] ?? 'always', pullPolicies, 'pull-policy', 'command line');
  const image = await obtainImage(settings, {
    reference,
    policies: [policy],
    platform: parsePlatform(args.platform),
    credentials: { jobAuthConfig: undefined, credentialsFile: settings.oci.credentialsFile },
  });
  writeAll(1, `${formatReference({ ...reference, digest: image.meta.digest })}\n`);
});
