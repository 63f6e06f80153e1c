// What doctor finds, and how it is shown: a table for people, JSON for
// machines. An error is something that stops jobs (or stops them from being
// set up); a warning is something jobs run with, worse than they could.
export type FindingStatus = 'ok' | 'warning' | 'error';

export interface Finding {
  /** What was checked, short: "systemd-nspawn", "state directory", "image bookworm". */
  check: string;
  status: FindingStatus;
  /** What was found and what it means for jobs. */
  finding: string;
  /** The exact fix: a command or a configuration line. */
  fix?: string;
}

export const ok = (check: string, finding: string): Finding => ({ check, status: 'ok', finding });
export const warning = (check: string, finding: string, fix?: string): Finding => ({ check, status: 'warning', finding, fix });
export const error = (check: string, finding: string, fix?: string): Finding => ({ check, status: 'error', finding, fix });

/** Whether anything found stops jobs: doctor then exits non-zero. */
export function blocksJobs(findings: readonly Finding[]): boolean {
  return findings.some((finding) => finding.status === 'error');
}

/** Breaks text into lines of at most width characters, at spaces. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  return line ? [...lines, line] : lines;
}

/**
 * STATUS, CHECK and FINDING columns, the fix on lines of its own below its
 * finding; long text wraps within the finding column.
 */
export function formatFindings(findings: readonly Finding[], columns = 100): string {
  const statusWidth = 7;
  const checkWidth = Math.min(22, Math.max(5, ...findings.map((finding) => finding.check.length)));
  const indent = statusWidth + checkWidth + 4;
  const textWidth = Math.max(30, columns - indent);
  const pad = ' '.repeat(indent);
  const out = [`${'STATUS'.padEnd(statusWidth)}  ${'CHECK'.padEnd(checkWidth)}  FINDING / FIX`];
  for (const finding of findings) {
    const text = wrap(finding.finding, textWidth);
    const check = finding.check.length > checkWidth ? [finding.check, ''] : [finding.check];
    out.push(`${finding.status.padEnd(statusWidth)}  ${check[0]!.padEnd(checkWidth)}  ${check.length > 1 ? '' : text.shift() ?? ''}`.trimEnd());
    for (const line of text) out.push(`${pad}${line}`);
    if (finding.fix) wrap(finding.fix, textWidth - 5).forEach((line, index) => out.push(`${pad}${index ? '     ' : 'fix: '}${line}`));
  }
  const errors = findings.filter((finding) => finding.status === 'error').length;
  const warnings = findings.filter((finding) => finding.status === 'warning').length;
  out.push('', ...wrap(errors
    ? `${errors} error(s), ${warnings} warning(s): jobs cannot run as configured until the errors are fixed.`
    : `no errors, ${warnings} warning(s): jobs can run${warnings ? '; the warnings say what they run without' : ''}.`, columns));
  return `${out.join('\n')}\n`;
}
