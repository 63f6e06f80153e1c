// What a process's sandbox looks like, and a probe that tries to leave it:
// the "shocker" escape (open_by_handle_at, which systemd-nspawn's seccomp
// filter refuses its payload). Compiled statically, so it runs in any image,
// and put where a job can reach it (the shared cache directory).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const probeSource = `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Takes a handle of DIR with name_to_handle_at, then opens it again by handle. */
int main(int argc, char **argv) {
  if (argc != 2) return 2;
  struct file_handle *handle = malloc(sizeof *handle + MAX_HANDLE_SZ);
  handle->handle_bytes = MAX_HANDLE_SZ;
  int mount_id;
  if (name_to_handle_at(AT_FDCWD, argv[1], handle, &mount_id, 0) != 0) { printf("name_to_handle_at: %s\\n", strerror(errno)); return 3; }
  int mount_fd = open(argv[1], O_RDONLY | O_DIRECTORY);
  int fd = open_by_handle_at(mount_fd, handle, O_RDONLY | O_DIRECTORY);
  if (fd < 0) { printf("open_by_handle_at: %s\\n", strerror(errno)); return 1; }
  printf("open_by_handle_at: opened\\n");
  return 0;
}
`;

/** Builds the probe into dir/name and returns its path. */
export function buildHandleProbe(dir: string, name = 'handle-probe'): string {
  const work = mkdtempSync(`${tmpdir()}/nsr-probe-`);
  try {
    writeFileSync(`${work}/probe.c`, probeSource);
    execFileSync('cc', ['-static', '-O1', '-o', `${dir}/${name}`, `${work}/probe.c`]);
    return `${dir}/${name}`;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The lines of /proc/PID/status that make a sandbox, as a shell in the machine prints them. */
export const sandboxCommand = 'grep -E "^(CapBnd|CapEff|Seccomp|Seccomp_filters|NoNewPrivs):" /proc/self/status';

export interface Sandbox {
  CapBnd: string;
  CapEff: string;
  Seccomp: string;
  Seccomp_filters?: string;
}

export function parseSandbox(text: string): Sandbox {
  const fields = Object.fromEntries([...text.matchAll(/^(CapBnd|CapEff|Seccomp|Seccomp_filters):\s*(\S+)$/gm)].map((m) => [m[1], m[2]]));
  if (!fields.CapBnd || !fields.Seccomp) throw new Error(`no sandbox fields in ${JSON.stringify(text)}`);
  return fields as unknown as Sandbox;
}

export function sandboxOfPid(pid: number | string): Sandbox {
  return parseSandbox(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

/** Host PIDs of every process in the PID namespace of pid (a machine's PID 1, say). */
export function processesInNamespaceOf(pid: number): number[] {
  const namespace = readlinkSync(`/proc/${pid}/ns/pid`);
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    try {
      return readlinkSync(`/proc/${entry}/ns/pid`) === namespace ? [Number(entry)] : [];
    } catch {
      return [];
    }
  });
}

/** major:minor of the host's first disk: what a job would mknod to read the host's files. */
export function hostDisk(): string {
  const disk = readdirSync('/sys/block').find((name) => !/^(loop|ram|zram|nbd)/.test(name));
  return disk ? readFileSync(`/sys/block/${disk}/dev`, 'utf8').trim() : '7:0';
}

export function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

/** The checks, as one shell line: the sandbox fields, the handle probe, a read of the host's disk. */
export function probeScript(cache: string): string {
  const [major, minor] = hostDisk().split(':');
  return `${sandboxCommand}; ${cache}/handle-probe ${cache}; ` +
    `mknod /tmp/disk b ${major} ${minor} 2>/dev/null; head -c 1 /tmp/disk >/dev/null 2>&1 && echo disk: read || echo disk: refused; rm -f /tmp/disk`;
}

export interface Findings {
  sandbox: Sandbox;
  handle: string;
  disk: string;
}

export function findings(output: string): Findings {
  return {
    sandbox: parseSandbox(output),
    handle: /^open_by_handle_at: .*$/m.exec(output)?.[0] ?? `no probe output in ${output}`,
    disk: /^disk: .*$/m.exec(output)?.[0] ?? `no disk output in ${output}`,
  };
}
