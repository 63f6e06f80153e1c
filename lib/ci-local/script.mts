// The stage scripts of a local job, shaped like gitlab-runner's bash shell
// writes them (shells/bash.go): `set -eo pipefail`, every variable exported,
// a cd into the project directory, and each command echoed as "$ command"
// (in bold green on a terminal; a multi-line command shows its first line
// and "# collapsed multi-line command") before it runs in the same shell,
// so a failing command ends the script with its exit code. before_script and
// script share one shell; after_script gets a shell of its own. Quoting is
// POSIX, so images whose bash is busybox sh run the scripts too.

export interface StageScriptOptions {
  /** Expanded variables, exported in this order. */
  variables: ReadonlyMap<string, string>;
  projectDir: string;
  commands: readonly string[];
  color: boolean;
}

export function singleQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** A name the shell can export: GitLab allows names (like "1X") that sh rejects. */
function exportable(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}

export function echoLine(command: string, color: boolean): string {
  const lines = command.split('\n').filter((line, index, all) => line.trim() !== '' || index < all.length - 1);
  const shown = lines.length > 1 ? `$ ${lines[0]} # collapsed multi-line command` : `$ ${command.trimEnd()}`;
  return color ? `printf '\\033[32;1m%s\\033[0;m\\n' ${singleQuote(shown)}` : `printf '%s\\n' ${singleQuote(shown)}`;
}

export function buildStageScript(options: StageScriptOptions): string {
  const lines = [
    '#!/usr/bin/env bash',
    '# nspawn-runner exec (lib/ci-local/script.mts)',
    'set -e',
    // dash has no pipefail, and a failing `set` would end its script: try in a subshell.
    'if (set -o pipefail) 2>/dev/null; then set -o pipefail; fi',
    'set +o noclobber',
  ];
  for (const [name, value] of options.variables) {
    if (exportable(name)) lines.push(`export ${name}=${singleQuote(value)}`);
  }
  lines.push(`cd ${singleQuote(options.projectDir)}`);
  for (const command of options.commands) {
    lines.push(echoLine(command, options.color), command);
  }
  lines.push('exit 0');
  return `${lines.join('\n')}\n`;
}
