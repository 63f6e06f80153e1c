// The stage agent: a small sh loop inside every job machine that starts the
// job's stage scripts. It runs as the machine's payload (hosts without
// systemd) or as a service of the machine's own systemd (booted machines), so
// every process of a job descends from what systemd-nspawn started and keeps
// nspawn's sandbox: its capability bounding set, its seccomp filter, its /dev
// and, on systemd hosts, its device policy and cgroup. A process entered from
// the host with nsenter gets none of these (issue 11: a job could open the
// host's disks and escape with open_by_handle_at).
//
// The host talks to the agent through the job's io directory, bound into the
// machine at machineIoDir. Nothing in it is trusted by the host: the job is
// root in there. The host only opens single names in it, never following a
// symlink, and checks what it opened (job/stage.mts).
//   requests      FIFO, one request per line: "TOKEN SHELL" (made by the agent)
//   TOKEN.sh      the stage's script, written by the host
//   TOKEN.status  its exit status, written by the agent when the shell exits
//   output        the stages' output, O_APPEND (see job/stage.mts for why a file)
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Bind } from '../nspawn.mts';

export const machineIoDir = '/run/nspawn-runner';
export const machineAgentPath = '/run/nspawn-runner-agent.sh';
export const agentUnitName = 'nspawn-runner-agent.service';
const machineUnitPath = `/run/systemd/system/${agentUnitName}`;

/** The environment of every stage: the script's own, never the host's. */
export const stageEnv = [
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'HOME=/root',
  'USER=root',
  'LOGNAME=root',
  'LANG=C.UTF-8',
  'container=systemd-nspawn',
] as const;

/** A word for sh: single-quoted unless plainly safe. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_=@%+:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

export interface StageSetup {
  /** NAME=VALUE entries of every stage's environment (stageEnv, or an OCI image's Env over it). */
  env: readonly string[];
  /** Where stages start (an OCI image's WorkingDir); created when missing, as docker does. */
  workdir: string;
}

export const defaultStageSetup: StageSetup = { env: stageEnv, workdir: '/' };

/**
 * POSIX sh, for dash, bash and busybox ash alike. It first replaces its
 * environment (nspawn's or the machine's systemd's) with the stages' own,
 * once, so a stage costs no env(1): our defaults, or an OCI image's Env over
 * them, written in as quoted words. setsid gives each stage a session, so a
 * cancel reaches the stage's processes and nothing else. The status is one
 * write of a few bytes; the host takes an empty file for "not yet". The FIFO
 * is held open for writing too, so it never reports end-of-file between
 * requests. Stages start in the image's WorkingDir (made when missing, as
 * docker does), and a shell the image lacks (bash on alpine or busybox)
 * falls back to sh, as the Docker executor's shell detection does.
 */
export function buildAgentScript(setup: StageSetup = defaultStageSetup): string {
  const workdir = shellWord(setup.workdir);
  return `#!/bin/sh
# nspawn-runner stage agent (lib/job/stage-agent.mts): starts each stage's script.
[ "$NSPAWN_RUNNER_AGENT" = 1 ] || exec env -i NSPAWN_RUNNER_AGENT=1 ${setup.env.map(shellWord).join(' ')} /bin/sh "$0" "$@"
unset NSPAWN_RUNNER_AGENT
io=\${1:?usage: agent IO_DIR}
${setup.workdir === '/' ? '' : `mkdir -p ${workdir} 2>/dev/null
`}cd ${workdir} 2>/dev/null || cd / || exit 1
[ -p "$io/requests" ] || mkfifo -m 600 "$io/requests" || exit 1
exec 3<>"$io/requests" </dev/null
while read -r token shell <&3; do
  case $token in ''|.*|*[!A-Za-z0-9_.-]*) continue ;; esac
  case $shell in ''|*[!A-Za-z0-9_./-]*) continue ;; esac
  case $shell in
    /*) [ -x "$shell" ] || shell=/bin/sh ;;
    *) command -v "$shell" >/dev/null 2>&1 || shell=sh ;;
  esac
  setsid "$shell" "$io/$token.sh" </dev/null >>"$io/output" 2>&1 3<&- &
  wait $!
  echo $? >"$io/$token.status"
done
`;
}

export const agentScript = buildAgentScript();

/**
 * A service of the booted machine's systemd, started early in the boot and
 * pulled in by systemd.wants= on its command line (in a container, systemd
 * reads its own argv as the kernel command line). KillMode=process and
 * OOMPolicy=continue: background processes a stage leaves running live in
 * this unit's cgroup, and neither the agent's end nor an OOM kill of one of
 * them may take the others down.
 */
export const agentUnit = `[Unit]
Description=nspawn-runner stage agent
DefaultDependencies=no

[Service]
ExecStart=/bin/sh ${machineAgentPath} ${machineIoDir}
KillMode=process
OOMPolicy=continue
TasksMax=infinity
`;

/** The command line argument of a booted machine's systemd that starts the agent. */
const agentBootArg = `systemd.wants=${agentUnitName}`;

export function ioDirOf(jobDir: string): string {
  return `${jobDir}/io`;
}

/**
 * Creates the io directory with its output file, and the agent's files. The
 * agent makes its FIFO itself: Node has no mkfifo, and a process for it would
 * cost every prepare.
 */
export function createAgentFiles(jobDir: string, boot: boolean, setup: StageSetup = defaultStageSetup): void {
  const io = ioDirOf(jobDir);
  mkdirSync(io, { mode: 0o700 });
  writeFileSync(`${io}/output`, '', { mode: 0o600, flag: 'wx' });
  writeFileSync(`${jobDir}/agent.sh`, buildAgentScript(setup), { mode: 0o644 });
  if (boot) writeFileSync(`${jobDir}/agent.service`, agentUnit, { mode: 0o644 });
}

/**
 * Binds of the agent's files and the io directory. With a user namespace
 * the io directory is idmapped, so the machine's root owns it as the host's
 * root does (systemd-nspawn(1), --bind= idmap).
 */
export function agentBinds(jobDir: string, boot: boolean, privateUsers: boolean): Bind[] {
  const binds: Bind[] = [
    { source: ioDirOf(jobDir), target: machineIoDir, readOnly: false, idmap: privateUsers },
    { source: `${jobDir}/agent.sh`, target: machineAgentPath, readOnly: true },
  ];
  if (boot) binds.push({ source: `${jobDir}/agent.service`, target: machineUnitPath, readOnly: true });
  return binds;
}

/**
 * What nspawn runs: the agent itself at PID 2, or in a booted machine the
 * argument that makes the machine's systemd start it.
 */
export function agentPayload(boot: boolean): string[] {
  return boot ? [agentBootArg] : ['/bin/sh', machineAgentPath, machineIoDir];
}

/** Whether a process's argv is the agent's (how the host finds it among the machine's processes). */
export function isAgentArgv(argv: readonly string[]): boolean {
  return argv[1] === machineAgentPath && argv[2] === machineIoDir;
}
