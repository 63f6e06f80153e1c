// Which personality a machine needs, read from the image itself: an i386
// image on an x86-64 host must run with --personality=x86, or `uname -m` says
// x86_64 and 32-bit build tools pick the wrong target. The ELF header of the
// image's /bin/sh tells, for a few system calls and no process, so prepare
// stays cheap and hand-made images need no metadata.
import { closeSync, lstatSync, openSync, readSync, readlinkSync } from 'node:fs';

const elfMagic = [0x7f, 0x45, 0x4c, 0x46];
const elfClass32 = 1;
const elfDataLittle = 1;
const machineI386 = 3;

export interface ElfIdentity {
  bits: 32 | 64;
  /** e_machine: 3 for i386, 62 for x86-64, 183 for aarch64 ... */
  machine: number;
}

/** The class and machine of an ELF header, or undefined when bytes are not one. */
export function parseElfHeader(bytes: Uint8Array): ElfIdentity | undefined {
  if (bytes.length < 20 || elfMagic.some((byte, index) => bytes[index] !== byte)) return undefined;
  const little = bytes[5] === elfDataLittle;
  const machine = little ? bytes[18]! | (bytes[19]! << 8) : (bytes[18]! << 8) | bytes[19]!;
  return { bits: bytes[4] === elfClass32 ? 32 : 64, machine };
}

/** The personality flag value for a binary of this kind on this host, if any is needed. */
export function personalityFor(identity: ElfIdentity | undefined, hostArch: string = process.arch): string | undefined {
  return hostArch === 'x64' && identity?.bits === 32 && identity.machine === machineI386 ? 'x86' : undefined;
}

/**
 * Resolves path inside root as if root were "/": absolute symlinks in the
 * image (/bin/sh -> /usr/bin/dash) must not lead to the host's files.
 */
export function resolveInside(root: string, path: string): string | undefined {
  const pending = path.split('/').filter(Boolean).reverse();
  const resolved: string[] = [];
  for (let hops = 0; pending.length > 0;) {
    const part = pending.pop()!;
    if (part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = `${root}/${[...resolved, part].join('/')}`;
    let isLink: boolean;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch {
      return undefined;
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++hops > 40) return undefined;
    const target = readlinkSync(candidate);
    if (target.startsWith('/')) resolved.length = 0;
    pending.push(...target.split('/').filter(Boolean).reverse());
  }
  return `${root}/${resolved.join('/')}`;
}

export function readElfIdentity(path: string): ElfIdentity | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const header = new Uint8Array(20);
    return readSync(fd, header, 0, header.length, 0) === header.length ? parseElfHeader(header) : undefined;
  } finally {
    closeSync(fd);
  }
}

/** --personality for machines of the image at imagePath (a real path), or undefined for native ones. */
export function imagePersonality(imagePath: string): string | undefined {
  if (process.arch !== 'x64') return undefined;
  const shell = resolveInside(imagePath, '/bin/sh');
  return shell ? personalityFor(readElfIdentity(shell)) : undefined;
}
