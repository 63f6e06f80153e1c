// What exec prints on stdout: each job's output line by line behind its
// name (`build      | $ make`), so concurrent jobs stay readable, and the
// summary table at the end. Only whole lines are written: a job's partial
// line waits for its newline or the end of the stage.
import { writeAll } from '../log.mts';

export interface JobOutput {
  /** Output of a stage, in any chunks. */
  data(chunk: Uint8Array): void;
  /** A line of exec's own about the job. */
  note(text: string): void;
  /** Writes a partial line left over. */
  flush(): void;
}

const colors = [36, 33, 35, 32, 34, 91, 96, 93, 95, 92];

export class PrefixedOutput {
  private readonly write: (text: string) => void;
  private readonly width: number;
  private readonly color: boolean;
  private count = 0;

  constructor(names: readonly string[], color: boolean, write: (text: string) => void = (text) => writeAll(1, text)) {
    this.write = write;
    this.color = color;
    this.width = Math.min(Math.max(0, ...names.map((name) => name.length)), 40);
  }

  forJob(name: string): JobOutput {
    const code = colors[this.count++ % colors.length]!;
    const label = name.length > this.width ? `${name.slice(0, this.width - 1)}…` : name.padEnd(this.width);
    const prefix = this.color ? `\x1b[${code}m${label} |\x1b[0m ` : `${label} | `;
    const decoder = new TextDecoder('utf-8');
    let partial = '';
    const emit = (text: string): void => {
      const lines = (partial + text).split('\n');
      partial = lines.pop()!;
      if (lines.length) this.write(lines.map((line) => `${prefix}${line.replace(/\r$/, '')}\n`).join(''));
    };
    return {
      data: (chunk) => emit(decoder.decode(chunk, { stream: true })),
      note: (text) => {
        const dim = this.color ? `\x1b[2m${text}\x1b[0m` : text;
        this.write(`${prefix}${dim}\n`);
      },
      flush: () => {
        emit(decoder.decode());
        if (partial !== '') {
          this.write(`${prefix}${partial}\n`);
          partial = '';
        }
      },
    };
  }
}

export interface SummaryRow {
  job: string;
  stage: string;
  result: string;
  durationMs: number | undefined;
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return '';
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, '0')} s`;
}

/** A plain-text table: a header and one row per entry, columns padded. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ').trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

export function formatSummary(rows: readonly SummaryRow[]): string {
  return formatTable(['job', 'stage', 'result', 'duration'], rows.map((row) => [row.job, row.stage, row.result, formatDuration(row.durationMs)]));
}
