import assert from 'node:assert/strict';
import { test } from 'node:test';
import { helpText, parseArgs, reportError } from '../lib/cli.mts';
import { JobError, ScriptFailed, SystemError } from '../lib/errors.mts';
import { setLogLevel } from '../lib/log.mts';
import { runner } from './support/runner.mts';

const spec = { name: 'prepare', summary: 'start', usage: '[--id ID]', string: ['id'] };

test('arguments: known options parse, unknown ones are refused', () => {
  const args = parseArgs(spec, ['--id', '5', '-v', 'img']);
  assert.equal(args.id, '5');
  assert.equal(args.verbose, true);
  assert.deepEqual(args._, ['img']);
  assert.throws(() => parseArgs(spec, ['--bogus']), /unknown option --bogus/);
  assert.throws(() => parseArgs(spec, ['--id', '1', '--id', '2']), /given twice/);
  assert.match(helpText(spec), /usage: nspawn-runner prepare \[--id ID\]/);
});

test('errors map to gitlab-runner exit codes', () => {
  setLogLevel('error');
  process.env.BUILD_FAILURE_EXIT_CODE = '11';
  process.env.SYSTEM_FAILURE_EXIT_CODE = '12';
  try {
    setLogLevel('error');
    assert.equal(reportError(new ScriptFailed(3, 'x')), 11);
    assert.equal(reportError(new JobError('no such image')), 11);
    assert.equal(reportError(new SystemError('machine gone')), 12);
    assert.equal(reportError(Object.assign(new Error('disk'), { code: 'ENOSPC' })), 12);
  } finally {
    delete process.env.BUILD_FAILURE_EXIT_CODE;
    delete process.env.SYSTEM_FAILURE_EXIT_CODE;
    setLogLevel('info');
  }
});

test('every command has --help, and the entry point lists them', async () => {
  const list = await runner(['--help']);
  assert.equal(list.code, 0);
  const commands = [...list.stdout.matchAll(/^ {2}([a-z-]+) /gm)].map((match) => match[1]!);
  assert.ok(commands.length >= 6, list.stdout);
  for (const command of commands) {
    const help = await runner([command, '--help']);
    assert.equal(help.code, 0, `${command}: ${help.stderr}`);
    assert.match(help.stdout, new RegExp(`usage: nspawn-runner ${command}`));
  }
  const unknown = await runner(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});
