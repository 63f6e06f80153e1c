#!/bin/sh
//bin/true; exec "${0%/*}/../bin/bun" "$0" "$@"
// doctor: checks the host and this installation, and says for each finding
// what it means for jobs and how to fix it.
import { realpathSync } from 'node:fs';
import { main } from '../lib/cli.mts';
import { runDoctor } from '../lib/doctor/doctor.mts';
import { blocksJobs, formatFindings } from '../lib/doctor/report.mts';
import { writeAll } from '../lib/log.mts';
import { configFilePath } from '../lib/settings.mts';

await main({
  name: 'doctor',
  summary: 'Check the host and this installation: systemd-nspawn, host mode, storage, cgroups, /run, user\n' +
    'namespaces, network, tools, the gitlab-runner binary, the configuration, images and config.toml.\n' +
    'Prints ok / warning / error, the finding and its fix. Exits 1 when something stops jobs.',
  usage: '[--json] [--runner-config FILE]',
  options: [
    '      --json             print the findings as JSON',
    '      --runner-config F  gitlab-runner\'s configuration (default /etc/gitlab-runner/config.toml)',
  ],
  string: ['runner-config'],
  boolean: ['json'],
  needsRoot: true,
  lenientConfig: true,
}, async (args, settings, configProblems) => {
  const findings = await runDoctor({
    settings,
    configFile: configFilePath({ config: args.config }),
    configProblems,
    runnerConfig: args['runner-config'] ?? '/etc/gitlab-runner/config.toml',
    executable: realpathSync(new URL('../bin/nspawn-runner', import.meta.url)),
    path: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
  });
  const blocked = blocksJobs(findings);
  writeAll(1, args.json
    ? `${JSON.stringify({ ok: !blocked, findings }, null, 1)}\n`
    : formatFindings(findings, process.stdout.columns || 100));
  return blocked ? 1 : 0;
});
