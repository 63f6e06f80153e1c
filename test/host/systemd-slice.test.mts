import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildSliceArgs, jobMachineOfSlice } from '../../lib/host/systemd-slice.mts';
import { sliceName } from '../../lib/host/systemd-unit.mts';

test('a job\'s slice gets its limits as runtime properties, the slice after --', () => {
  assert.deepEqual(buildSliceArgs(sliceName('run-7'), ['CPUWeight=50', 'MemoryMax=40%']), [
    'systemctl', 'set-property', '--runtime', '--', 'machine-nspawn\\x2drunner\\x2drun\\x2d7.slice', 'CPUWeight=50', 'MemoryMax=40%',
  ]);
});

test('gc finds the job machine of a slice by its name; other slices are not ours', () => {
  const cases: Array<[string, string | undefined]> = [
    [sliceName('run-7'), 'run-7'],
    [sliceName('run-a-b'), 'run-a-b'],
    [sliceName(`run-a${'-'.repeat(59)}`), undefined],
    ['machine.slice', undefined],
    ['machine-nspawn\\x2drunner\\x2drun\\x2d7.service', undefined],
    ['machine-other.slice', undefined],
  ];
  for (const [slice, machine] of cases) assert.equal(jobMachineOfSlice(slice), machine, slice);
});
