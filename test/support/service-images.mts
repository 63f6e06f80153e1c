// Service images for the services: tests, built over the busybox image of
// oci-images.mts and pushed to a test registry as svc/NAME:1:
//   httpd     busybox httpd on exposed port 8080
//   secret    refuses to start without SECRET_PASSWORD (as postgres does), then
//             serves it on exposed port 7000; WorkingDir /srv/secret, User svc
//             (with a getent, which nspawn resolves the user with)
//   override  an entrypoint that fails, for jobs that give their own
//   slow      listens on exposed port 8081 after 4 s
//   deaf      logs 60 lines and never listens on its exposed port 8082
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { files, makeOciBusyboxTree, pushLayout, type PushedImage } from './oci-images.mts';
import type { Registry } from './registry.mts';

export type ServiceImages = Record<'httpd' | 'secret' | 'override' | 'slow' | 'deaf', PushedImage>;

function umoci(args: string[]): void {
  execFileSync('umoci', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

const secretScript = `#!/bin/sh
if [ -z "$SECRET_PASSWORD" ]; then echo "secret: SECRET_PASSWORD is not set, refusing to start" >&2; exit 1; fi
echo "$SECRET_PASSWORD" > /www/secret
pwd > /www/cwd
id -un > /www/user
echo "secret: serving on 7000"
exec httpd -f -p 7000 -h /www
`;

/**
 * nspawn resolves --user with the image's /usr/bin/getent (passwd, then
 * initgroups), run with an empty environment; busybox has none: sh does.
 */
const getentScript = `#!/bin/sh
case $1 in
  initgroups) echo "$2 $(/bin/grep "^$2:" /etc/passwd | /bin/cut -d: -f4)" ;;
  *) /bin/grep -E "^$2:|^[^:]*:[^:]*:$2:" "/etc/$1" ;;
esac
`;

export function buildServiceImages(registry: Registry): ServiceImages {
  const work = mkdtempSync(`${tmpdir()}/nsr-svc-build-`);
  try {
    const layout = `${work}/layout`;
    umoci(['init', `--layout=${layout}`]);
    umoci(['new', `--image=${layout}:base`]);
    umoci(['insert', `--image=${layout}:base`, '--', makeOciBusyboxTree(`${work}/busybox`), '/']);
    const image = (name: string, config: string[], tree?: Record<string, string>, executable: string[] = [], owned: string[] = []): PushedImage => {
      umoci(['tag', `--image=${layout}:base`, name]);
      if (tree) {
        const dir = files(`${work}/${name}`, tree);
        for (const path of executable) chmodSync(`${dir}/${path}`, 0o755);
        for (const path of owned) chownSync(`${dir}/${path}`, 1000, 1000);
        umoci(['insert', `--image=${layout}:${name}`, '--', dir, '/']);
      }
      umoci(['config', `--image=${layout}:${name}`, ...config]);
      return pushLayout(layout, name, registry, `svc/${name}:1`);
    };
    const shell = (script: string) => ['--config.entrypoint=sh', '--config.entrypoint=-c', `--config.entrypoint=${script}`];
    return {
      httpd: image('httpd', ['--config.exposedports=8080/tcp', '--config.entrypoint=httpd', '--config.cmd=-f', '--config.cmd=-v',
        '--config.cmd=-p', '--config.cmd=8080', '--config.cmd=-h', '--config.cmd=/www'], { 'www/index.html': 'hello from the httpd service\n' }),
      secret: image('secret', ['--config.exposedports=7000/tcp', '--config.entrypoint=/usr/local/bin/serve-secret', '--config.workingdir=/srv/secret',
        '--config.user=svc'], {
        'usr/local/bin/serve-secret': secretScript, 'www/.keep': '', 'usr/bin/getent': getentScript,
        'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nsvc:x:1000:1000:svc:/www:/bin/sh\n', 'etc/group': 'root:x:0:\nsvc:x:1000:\n',
      }, ['usr/local/bin/serve-secret', 'usr/bin/getent'], ['www']),
      override: image('override', shell('echo "the image entrypoint ran"; exit 3')),
      slow: image('slow', ['--config.exposedports=8081/tcp',
        ...shell('echo "slow: warming up"; sleep 4; mkdir -p /w; echo "slow but there" > /w/index.html; exec httpd -f -p 8081 -h /w')]),
      deaf: image('deaf', ['--config.exposedports=8082/tcp',
        ...shell('i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo "deaf: log line $i"; done; exec sleep 3600')]),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
