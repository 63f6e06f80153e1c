#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// chroot-push: exports a local image as an OCI image to a registry.
import { main } from '../lib/cli.mts';
import { UsageError } from '../lib/errors.mts';
import { writeAll } from '../lib/log.mts';
import { pushImage } from '../lib/oci/push.mts';

await main({
  name: 'chroot-push',
  summary: 'Export image NAME (its current version) as a one-layer OCI image and push it to REFERENCE\n' +
    '(registry/path:tag). Prints REFERENCE@sha256:... on stdout: other runners pin the image by it.\n' +
    'Credentials: oci.credentials_file; plain http: oci.insecure_registries.',
  usage: 'NAME REFERENCE',
  needsRoot: true,
}, async (args, settings) => {
  const [name, reference] = args._.map(String);
  if (name === undefined || reference === undefined) throw new UsageError('chroot-push: give NAME and REFERENCE');
  writeAll(1, `${await pushImage(settings, name, reference)}\n`);
});
