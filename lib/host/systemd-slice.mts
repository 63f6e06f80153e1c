// A job with services on a systemd host: the unit of its machine and the
// units of its service machines share one slice under machine.slice, which
// carries the job's limits, so that services count against them (issue 14);
// the units have none of their own. A job without services has its limits on
// its unit and no slice: this module is loaded only for jobs with services,
// and for gc.
//
// `systemctl set-property --runtime` makes the slice before any unit starts
// in it: systemd loads a slice without a unit file, and keeps the properties
// as drop-ins in /run/systemd/system.control/<slice>.d (systemctl(1)). A
// slice stays active when its last unit stops, so cleanup stops it, then
// removes the drop-ins; systemd then unloads it. Measured on systemd 252.
import { rmSync } from 'node:fs';
import { SystemError } from '../errors.mts';
import { check, run } from '../exec.mts';
import { systemdVersion } from '../nspawn.mts';
import type { Limits } from '../settings.mts';
import { limitProperties, runtimeDropInDir, sliceName, sliceNamePrefix } from './systemd-unit.mts';

export function buildSliceArgs(slice: string, properties: readonly string[]): string[] {
  return ['systemctl', 'set-property', '--runtime', '--', slice, ...properties];
}

/** The job's slice, with the job's limits (none set: an implicit slice, made by its first unit). */
export async function makeJobSlice(jobMachine: string, limits: Limits): Promise<string> {
  const slice = sliceName(jobMachine);
  const properties = limitProperties(limits, await systemdVersion());
  if (properties.length) await check(buildSliceArgs(slice, properties));
  return slice;
}

/** Stops the job's slice (its units are stopped by then) and removes its drop-ins. Safe to repeat. */
export async function removeJobSlice(jobMachine: string): Promise<void> {
  await stopSlice(sliceName(jobMachine));
}

async function stopSlice(slice: string): Promise<void> {
  const stopped = await run(['systemctl', 'stop', '--', slice]);
  // Exit status 5: not loaded, i.e. never made or already gone.
  if (stopped.code !== 0 && stopped.code !== 5) {
    throw new SystemError(`cannot stop ${slice}: ${stopped.stderr.trim() || `exit status ${stopped.code}`}`, `see "systemctl status ${slice}"`);
  }
  rmSync(runtimeDropInDir(slice), { recursive: true, force: true });
}

/**
 * The job machine a slice of sliceName() was made for; undefined for any
 * other slice, and for one whose name was hashed.
 */
export function jobMachineOfSlice(slice: string): string | undefined {
  if (!slice.startsWith(sliceNamePrefix) || !slice.endsWith('.slice')) return undefined;
  const machine = slice.slice(sliceNamePrefix.length, -'.slice'.length).replaceAll('\\x2d', '-');
  return machine.startsWith('run-') ? machine : undefined;
}

/**
 * gc: stops the job slices that are active, hold no unit any more, and whose
 * job isGone; returns them. A prepare's slice is inactive until its first
 * unit starts, and holds units from then on: gc never takes it from under a
 * prepare, whatever state directory that prepare uses.
 */
export async function stopStraySlices(isGone: (jobMachine: string) => boolean): Promise<string[]> {
  // systemctl matches with fnmatch(3), where a backslash escapes: "?" stands for one.
  const pattern = `${sliceNamePrefix.replaceAll('\\', '?')}run?x2d*.slice`;
  const listed = await run(['systemctl', 'list-units', '--all', '--plain', '--no-legend', '--full', '--type=slice', '--', pattern]);
  const slices = listed.stdout.split('\n').map((line) => line.trim().split(/\s+/)[0]!).filter((slice) => jobMachineOfSlice(slice));
  if (!slices.length) return [];
  const shown = await run(['systemctl', 'show', '--property=Id', '--property=ActiveState', '--property=SliceOf', '--', ...slices]);
  const units = shown.stdout.split('\n\n').map((block) => Object.fromEntries(block.trim().split('\n').map((line) => line.split(/=(.*)/s, 2))));
  const stray = units.filter((unit) => unit.ActiveState === 'active' && !unit.SliceOf && isGone(jobMachineOfSlice(unit.Id!)!)).map((unit) => unit.Id!);
  for (const slice of stray) await stopSlice(slice);
  return stray;
}
