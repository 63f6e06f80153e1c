// OCI test images, built with umoci in a layout of our own and pushed with
// skopeo to a test registry (registry.mts): no image comes from the internet.
//   busybox  busybox-static with its applets, no bash, no /usr (nspawn wants one)
//   layers   busybox plus layers that delete a file, replace a directory by
//            an opaque one and a directory by a file (whiteouts)
//   env      busybox plus a tool in /opt/tools/bin, and a config with Env and WorkingDir
// All three share the busybox layer, so the store must keep that blob once.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { makeBusyboxImage } from './images.mts';
import type { Registry } from './registry.mts';

export interface PushedImage {
  /** host:port/repository:tag */
  reference: string;
  /** The manifest digest the registry has. */
  digest: string;
}

export interface TestImages {
  busybox: PushedImage;
  layers: PushedImage;
  env: PushedImage;
  /** The busybox layer all three share. */
  baseLayer: string;
}

function umoci(args: string[]): void {
  execFileSync('umoci', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Pushes tag of layout to the registry as repository:tag; returns what the registry got. */
export function pushLayout(layout: string, tag: string, registry: Registry, repository: string, authFile?: string): PushedImage {
  const reference = `${registry.host}/${repository}`;
  const digestFile = `${layout}.digest`;
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', ...(authFile ? [`--dest-authfile=${authFile}`] : ['--dest-no-creds']),
    `--digestfile=${digestFile}`, '--', `oci:${layout}:${tag}`, `docker://${reference}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  const digest = readFileSync(digestFile, 'utf8').trim();
  rmSync(digestFile);
  return { reference, digest };
}

export function files(dir: string, entries: Record<string, string>): string {
  for (const [path, content] of Object.entries(entries)) {
    mkdirSync(`${dir}/${path.slice(0, path.lastIndexOf('/'))}`, { recursive: true });
    writeFileSync(`${dir}/${path}`, content);
  }
  return dir;
}

/** A busybox tree the way an OCI busybox image has it: sh, no bash, no /usr. */
export function makeOciBusyboxTree(dir: string): string {
  makeBusyboxImage(dir);
  rmSync(`${dir}/bin/bash`);
  rmSync(`${dir}/usr`, { recursive: true });
  return dir;
}

/** Builds the three images in a layout under a temp dir and pushes them as <prefix>/NAME:1. */
export function buildTestImages(registry: Registry, prefix = 'test', authFile?: string): TestImages {
  const work = mkdtempSync(`${tmpdir()}/nsr-oci-build-`);
  try {
    const layout = `${work}/layout`;
    umoci(['init', `--layout=${layout}`]);
    umoci(['new', `--image=${layout}:busybox`]);
    umoci(['insert', `--image=${layout}:busybox`, '--', makeOciBusyboxTree(`${work}/busybox`), '/']);
    umoci(['config', `--image=${layout}:busybox`, '--config.cmd=/bin/sh']);
    const busybox = pushLayout(layout, 'busybox', registry, `${prefix}/busybox:1`, authFile);

    umoci(['tag', `--image=${layout}:busybox`, 'layers']);
    const lower = files(`${work}/lower`, {
      'etc/d/a': 'a from the lower layer\n', 'etc/d/sub/deep': 'deep\n', 'etc/gone': 'deleted above\n', 'opt/keep': 'kept\n',
      'srv/thing/inside': 'a directory below, a file above\n',
    });
    umoci(['insert', `--image=${layout}:layers`, '--', lower, '/']);
    umoci(['insert', `--image=${layout}:layers`, '--whiteout', '/etc/gone']);
    umoci(['insert', `--image=${layout}:layers`, '--opaque', '--', files(`${work}/upper`, { b: 'b from the upper layer\n' }), '/etc/d']);
    umoci(['insert', `--image=${layout}:layers`, '--whiteout', '/srv/thing']);
    umoci(['insert', `--image=${layout}:layers`, '--', files(`${work}/file`, { thing: 'now a file\n' }) + '/thing', '/srv/thing']);
    const layers = pushLayout(layout, 'layers', registry, `${prefix}/layers:1`, authFile);

    umoci(['tag', `--image=${layout}:busybox`, 'env']);
    const tools = files(`${work}/tools`, { 'bin/hello': '#!/bin/sh\necho "hello from $GREETING in $JAVA_HOME"\n' });
    chmodSync(`${tools}/bin/hello`, 0o755);
    umoci(['insert', `--image=${layout}:env`, '--', tools, '/opt/tools']);
    umoci(['config', `--image=${layout}:env`, '--config.env=PATH=/opt/tools/bin:/usr/local/bin:/usr/bin:/bin',
      '--config.env=JAVA_HOME=/opt/java', '--config.env=GREETING=the image\'s "Env"', '--config.workingdir=/work/dir']);
    const env = pushLayout(layout, 'env', registry, `${prefix}/env:1`, authFile);

    const manifest = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci:${layout}:busybox`], { encoding: 'utf8' })) as { layers: Array<{ digest: string }> };
    return { busybox, layers, env, baseLayer: manifest.layers[0]!.digest };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** An image made of one hand-written, uncompressed layer (tar bytes), pushed as repository:tag. */
export function pushRawLayerImage(registry: Registry, repository: string, tar: Buffer, base = true, authFile?: string): PushedImage {
  const work = mkdtempSync(`${tmpdir()}/nsr-oci-raw-`);
  try {
    const layout = `${work}/layout`;
    umoci(['init', `--layout=${layout}`]);
    umoci(['new', `--image=${layout}:raw`]);
    if (base) umoci(['insert', `--image=${layout}:raw`, '--', makeOciBusyboxTree(`${work}/busybox`), '/']);
    writeFileSync(`${work}/layer.tar`, tar);
    umoci(['raw', 'add-layer', `--image=${layout}:raw`, '--', `${work}/layer.tar`]);
    return pushLayout(layout, 'raw', registry, repository, authFile);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A tar archive of entries, written by python3's tarfile (it writes what it is told, ../ and all). */
export function tarOf(entries: Array<{ name: string; type?: 'file' | 'symlink' | 'hardlink' | 'dir'; content?: string; target?: string; size?: number }>): Buffer {
  const script = `
import io, json, sys, tarfile
out = io.BytesIO()
with tarfile.open(fileobj=out, mode='w', format=tarfile.PAX_FORMAT) as tar:
    for entry in json.loads(sys.stdin.read()):
        info = tarfile.TarInfo(entry['name'])
        kind = entry.get('type', 'file')
        info.mode = 0o755 if kind == 'dir' else 0o644
        if kind == 'symlink':
            info.type, info.linkname = tarfile.SYMTYPE, entry['target']
            tar.addfile(info)
        elif kind == 'hardlink':
            info.type, info.linkname = tarfile.LNKTYPE, entry['target']
            tar.addfile(info)
        elif kind == 'dir':
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        else:
            data = entry.get('content', '').encode() if 'size' not in entry else bytes(entry['size'])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
sys.stdout.buffer.write(out.getvalue())
`;
  return execFileSync('python3', ['-c', script], { input: JSON.stringify(entries), maxBuffer: 1 << 30 });
}
