// Reading progress out of the tools' own output, line by line: debootstrap's
// and mmdebstrap's "I:" lines, apt's "Get:" lines, ansible-playbook's task
// headers. Pure and stateful per run; table-tested. A line that says nothing
// about progress gives undefined.
export interface ProgressUpdate {
  phase?: string;
  detail?: string;
}

export type ToolLineParser = (line: string) => ProgressUpdate | undefined;

/** debootstrap does one thing per package for each verb; the index files are not packages. */
const packageVerbs: Record<string, string> = {
  Retrieving: 'downloading',
  Validating: 'downloading',
  Extracting: 'extracting',
  Unpacking: 'unpacking',
  Configuring: 'configuring',
};
const indexFiles = new Set(['InRelease', 'Release', 'Release.gpg', 'Packages']);

/** mmdebstrap's steps ("I: downloading packages with apt..."), by their first words. */
const mmdebstrapSteps: Array<[RegExp, string]> = [
  [/^running apt-get update/, 'updating package lists'],
  [/^downloading packages/, 'downloading'],
  [/^extracting archives/, 'extracting'],
  [/^installing (essential|remaining) packages/, 'installing'],
  [/^cleaning package lists/, 'cleaning up'],
];

/** debootstrap's steps that name no package ("I: Unpacking required packages..."). */
const debootstrapSteps: Array<[RegExp, string]> = [
  [/^Resolving dependencies/, 'resolving dependencies'],
  [/^(Installing core packages|Unpacking (required packages|the base system))/, 'unpacking'],
  [/^Configuring (required packages|the base system)/, 'configuring'],
];

export function bootstrapParser(): ToolLineParser {
  const seen: Record<string, Set<string>> = {};
  let total = 0;
  let downloads = 0;
  return (line) => {
    const step = /^I: (.*?)(\.\.\.)?$/.exec(line)?.[1];
    if (step === undefined) {
      // apt, under mmdebstrap: one "Get:N <uri> <suite> <package> ..." line per download.
      return /^Get:\d+ /.test(line) ? { detail: `${++downloads} packages` } : undefined;
    }
    const named = [...debootstrapSteps, ...mmdebstrapSteps].find(([pattern]) => pattern.test(step));
    if (named) return { phase: named[1] };
    // "Retrieving libc6 2.36-9", "Unpacking python3.11..." (the dots were taken above).
    const perPackage = /^(Retrieving|Validating|Extracting|Unpacking|Configuring) (\S+)( \S+)?$/.exec(step);
    if (!perPackage || indexFiles.has(perPackage[2]!)) return undefined;
    const [, verb, name] = perPackage as unknown as [string, string, string];
    const names = (seen[verb] ??= new Set());
    names.add(name);
    if (verb === 'Retrieving') {
      total = Math.max(total, names.size);
      return { phase: packageVerbs[verb], detail: `${names.size} packages` };
    }
    return { phase: packageVerbs[verb], detail: `${Math.min(names.size, total || names.size)}/${total || '?'} packages` };
  };
}

/** ansible-playbook: "TASK [name] ****" per task; total from --list-tasks when known. */
export function ansibleParser(total?: number): ToolLineParser {
  let index = 0;
  return (line) => {
    const task = /^TASK \[(.*)\] \**$/.exec(line);
    if (task) {
      index++;
      // Gathering Facts is not listed by --list-tasks.
      const of = total ? `/${Math.max(total, index)}` : '';
      return { phase: 'running the playbook', detail: `task ${index}${of}: ${task[1]}` };
    }
    if (/^PLAY RECAP \**$/.test(line)) return { detail: `${index} tasks done` };
    return undefined;
  };
}

/** The number of tasks `ansible-playbook --list-tasks` lists (each task line carries "TAGS:"). */
export function countListedTasks(output: string): number {
  return output.split('\n').filter((line) => /^ {6}\S.*\tTAGS: \[/.test(line)).length;
}
