// The platform a job asks for (image:docker:platform, oci-pull --platform).
// A module of its own so that oci-pull, which needs only this of the job
// image rules, does not load them (resolve.mts) on a cold pull.
import { JobError } from '../errors.mts';
import type { Platform } from './skopeo.mts';

/** Node's name of the host's architecture as OCI names it. */
const hostArchitectures: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: '386', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };

/**
 * image:docker:platform. The host's own platform is the default (no
 * platform); i386 images run on amd64 hosts (--personality=x86, as for
 * local i386 images); any other platform would need an emulator.
 */
export function parsePlatform(text: string | undefined, hostArch: string = process.arch): Platform | undefined {
  if (!text) return undefined;
  const match = /^([a-z0-9]+)\/([a-z0-9]+)(?:\/([a-z0-9]+))?$/.exec(text);
  const host = hostArchitectures[hostArch] ?? hostArch;
  if (!match) throw new JobError(`invalid platform ${JSON.stringify(text)}: use os/architecture[/variant], such as linux/amd64`);
  const [, os, architecture, variant] = match as unknown as [string, string, string, string | undefined];
  if (os !== 'linux') throw new JobError(`platform ${text} cannot run here: machines run Linux`);
  if (architecture === host && !variant) return undefined;
  if (architecture === '386' && host === 'amd64' && !variant) return { os, architecture };
  throw new JobError(`platform ${text} cannot run on this ${host} host`, `use linux/${host}${host === 'amd64' ? ' or linux/386' : ''}`);
}
