// Hosts whose PID 1 is systemd: each machine boots its image's systemd under
// a transient service in machine.slice, registered with machined, the way the
// original nspawn-runner and systemd-nspawn@.service run machines. Stages
// run through the stage agent, a service of the machine's systemd
// (job/stage-agent.mts): the original's per-stage `systemd-run --machine` kills
// whatever a stage leaves running. systemctl and machinectl run in prepare
// and cleanup, so through the lean run()/check(), not zx: its import alone
// (~30 ms) would cost more than these commands (exec.mts).
import { existsSync, lstatSync } from 'node:fs';
import { JobError, SystemError } from '../errors.mts';
import { check, run, type RunResult } from '../exec.mts';
import type { JobRecord } from '../job/record.mts';
import { removeTree } from '../mounts.mts';
import { systemdVersion } from '../nspawn.mts';
import { isLive, sleep, startTimeOf } from '../proc.mts';
import type { FoundMachine, HostMode, StartRequest } from './host.mts';
import { buildSystemdRunArgs, machineOfUnit, unitName } from './systemd-unit.mts';

export const systemdHost: HostMode = {
  name: 'systemd',
  registers: true,
  start: startUnit,
  async leaderOf(record) {
    const { leaderPid, leaderStartTime } = record;
    // The recorded PID costs nothing to check; machined only has to be asked
    // when the machine rebooted (RestartForceExitStatus) or is gone.
    if (leaderPid && isLive(leaderPid, leaderStartTime)) return leaderPid;
    return (await machineLeader(record.machine)) ?? leaderAfterReboot(unitName(record.machine), record.machine);
  },
  stop: stopUnit,
  async makeJobSlice(jobMachine, limits) {
    const { makeJobSlice } = await import('./systemd-slice.mts');
    return makeJobSlice(jobMachine, limits);
  },
};

/**
 * machined keeps one file per registered machine here; sd_get_machine_names(3)
 * lists machines from it. Checking it costs no process, unlike machinectl.
 */
const machinesDir = '/run/systemd/machines';

/** Where nspawn looks for an init with --boot (systemd-nspawn(1)). */
const initPaths = ['usr/lib/systemd/systemd', 'lib/systemd/systemd', 'sbin/init'];

function canBoot(imagePath: string): boolean {
  return initPaths.some((path) => {
    try {
      // lstat: /sbin/init is often an absolute symlink, which resolves on the host.
      lstatSync(`${imagePath}/${path}`);
      return true;
    } catch {
      return false;
    }
  });
}

async function startUnit(request: StartRequest, record: JobRecord): Promise<JobRecord> {
  // Machines of OCI images are not booted (no systemd in them): nspawn runs
  // the stage agent as its payload under the unit, and tells systemd it is
  // ready once the machine has started (--notify-ready=no, the default).
  if (request.boot && !canBoot(request.imagePath)) {
    throw new JobError(`image "${record.image}" cannot boot: it has no systemd (${initPaths.map((p) => `/${p}`).join(', ')})`,
      'machines on systemd hosts boot the image\'s systemd: install systemd in the image (chroot-create does), or set host: direct');
  }
  const unit = unitName(record.machine);
  const since = Math.floor(Date.now() / 1000);
  const argv = buildSystemdRunArgs({
    unit,
    description: `nspawn-runner job ${record.jobId}: machine ${record.machine} on image ${record.image}`,
    limits: request.limits,
    env: request.nspawnEnv,
    allDevices: request.allDevices,
    systemdVersion: await systemdVersion(),
    readyTimeoutSeconds: Math.ceil(request.readyTimeoutMs / 1000),
    outputFile: request.outputFile,
    slice: request.slice,
    nspawnArgs: request.nspawnArgs,
  });
  // From here on the unit may exist; cleanup finds it by name whatever fails.
  request.onSpawned({ ...record, unit });
  let boot = await bootAndAskLeader(argv, record.machine);
  // A failed unit of an earlier job with this id keeps the name taken.
  if (boot.started.code !== 0 && (await resetIfFailed(unit))) boot = await bootAndAskLeader(argv, record.machine);
  if (boot.started.code !== 0) {
    const why = (await unitJournal(unit, since)) || lastLines(boot.started);
    throw new SystemError(`machine ${record.machine} did not start: ${why}`,
      `see "journalctl -u ${unit}"; --debug shows the systemd-run command`);
  }
  const leader = boot.leader !== undefined && isLive(boot.leader) ? boot.leader : await machineLeader(record.machine);
  if (!leader) {
    // A payload that exits at once (a service's command) takes the machine with it before machined is asked.
    const gone = (await run(['systemctl', 'is-active', '--quiet', '--', unit])).code !== 0;
    throw new SystemError(`machine ${record.machine} ${gone ? 'stopped right after it started' : 'started but machined does not know it'}`,
      `see ${request.outputFile ?? `"journalctl -u ${unit}"`}`);
  }
  return { ...record, unit, leaderPid: leader, leaderStartTime: startTimeOf(leader) };
}

/**
 * Runs systemd-run, which returns at READY=1, and meanwhile asks machined for
 * the machine's leader: nspawn registers the machine before the machine's
 * systemd even starts, so the question costs prepare no time after the boot.
 */
async function bootAndAskLeader(argv: string[], machine: string): Promise<{ started: RunResult; leader: number | undefined }> {
  let booting = true;
  const starting = run(argv).finally(() => (booting = false));
  const asking = (async (): Promise<number | undefined> => {
    for (let delay = 2; booting; delay = Math.min(delay * 2, 20)) {
      if (existsSync(`${machinesDir}/${machine}`)) return machineLeader(machine);
      await sleep(delay);
    }
    return undefined;
  })();
  const [started, leader] = await Promise.all([starting, asking]);
  return { started, leader: started.code === 0 ? leader : undefined };
}

async function machineLeader(machine: string): Promise<number | undefined> {
  const result = await run(['machinectl', 'show', '--property=Leader', '--value', '--', machine]);
  const pid = Number(result.stdout.trim());
  return result.code === 0 && Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/**
 * A reboot inside the machine makes nspawn exit with 133 and systemd start
 * the unit again: wait for the new boot rather than call the machine gone.
 * systemd bounds the wait (TimeoutStartSec); the deadline is a safety net.
 */
async function leaderAfterReboot(unit: string, machine: string, timeoutMs = 300_000): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; Date.now() < deadline; delay = Math.min(delay * 2, 500)) {
    const shown = await run(['systemctl', 'show', '--property=ActiveState', '--property=SubState', '--', unit]);
    const state = Object.fromEntries(shown.stdout.trim().split('\n').map((line) => line.split('=', 2)));
    if (state.ActiveState === 'active') return machineLeader(machine);
    if (state.ActiveState !== 'activating' && state.SubState !== 'auto-restart') return undefined;
    await sleep(delay);
  }
  return undefined;
}

/**
 * Stops the unit and returns once machined has forgotten the machine. nspawn
 * gets SIGTERM, kills the machine's PID 1 (--kill-signal=SIGKILL in
 * buildNspawnArgs), the kernel kills the rest of its PID namespace, nspawn
 * unregisters the machine and exits; `systemctl stop` waits for all of that,
 * and --collect has the unit unloaded by the time it returns. Measured (issue
 * 16): `systemctl kill --signal=SIGKILL` of the whole cgroup returns sooner,
 * but machined then drops the machine only after its own round trips to
 * systemd, later than nspawn's unregistering does.
 */
async function stopUnit(record: Pick<JobRecord, 'machine'>): Promise<void> {
  const unit = unitName(record.machine);
  const stopped = await run(['systemctl', 'stop', '--', unit]);
  // Exit status 5: the unit is not loaded, i.e. never started or already gone.
  if (stopped.code !== 0 && stopped.code !== 5) {
    throw new SystemError(`cannot stop ${unit}: ${lastLines(stopped)}`, `see "systemctl status ${unit}"`);
  }
  await waitUntilUnregistered(record.machine);
  // nspawn removes this directory when it exits, unless it was killed
  // (an OOM kill, `systemctl kill`); nothing uses it once the unit is gone.
  const propagate = `/run/systemd/nspawn/propagate/${record.machine}`;
  if (existsSync(propagate)) await removeTree(propagate);
}

/**
 * Machines of our units (unitName()) matching pattern, loaded in any state,
 * with the nspawn command line systemd keeps for each (ExecStart): a unit
 * restarting after a reboot in its machine has no process to find.
 */
// Job machines are named run-<job id> (job/record.mts, machineName).
export async function findUnitMachines(pattern = unitName('run-*')): Promise<FoundMachine[]> {
  const listed = await run(['systemctl', 'list-units', '--all', '--plain', '--no-legend', '--full', '--', pattern]);
  const units = listed.stdout.split('\n').map((line) => line.trim().split(/\s+/)[0]!).filter((unit) => machineOfUnit(unit));
  return Promise.all(units.map(async (unit) => {
    const machine = machineOfUnit(unit)!;
    const shown = await run(['systemctl', 'show', '--property=ExecStart', '--value', '--', unit]);
    return {
      machine,
      commandLine: shown.stdout.trim(),
      async stop() {
        await stopUnit({ machine });
        // A unit started without --collect (not by prepare) stays failed
        // after the stop and keeps the name taken. prepare resets such a
        // leftover too; gc and cleanup's search leave none behind.
        await resetIfFailed(unit);
      },
    };
  }));
}

/** Returns whether the unit was failed and has been reset. */
async function resetIfFailed(unit: string): Promise<boolean> {
  const state = await run(['systemctl', 'show', '--property=ActiveState', '--value', '--', unit]);
  if (state.stdout.trim() !== 'failed') return false;
  await check(['systemctl', 'reset-failed', '--', unit]);
  return true;
}

/** Waits until machined no longer lists the machine: at once after a stop through nspawn, which unregisters it. */
async function waitUntilUnregistered(machine: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; existsSync(`${machinesDir}/${machine}`); delay = Math.min(delay * 2, 100)) {
    if (Date.now() > deadline) {
      throw new SystemError(`machine ${machine} is still registered`, `run "machinectl terminate ${machine}"`);
    }
    await sleep(delay);
  }
}

/** What the unit's processes logged since the start: nspawn says there why a boot failed. */
async function unitJournal(unit: string, sinceSeconds: number): Promise<string> {
  const result = await run(['journalctl', `--unit=${unit}`, `--since=@${sinceSeconds}`, '--output=cat', '--no-pager', '--quiet']);
  // systemd's own lines about the unit name it; nspawn's and the machine's do not.
  return result.stdout.split('\n').filter((line) => line && !line.includes(unit)).slice(-3).join(' / ');
}

function lastLines(result: RunResult): string {
  return result.stderr.trim().split('\n').slice(-3).join(' / ') || `exit status ${result.code}`;
}
