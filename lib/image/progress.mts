// Progress of long work on images (chroot-create, chroot-maintenance,
// --convert): one live line on a terminal, plain lines without one (timers,
// journald, CI), one per phase. The tools' own output (debootstrap prints
// some 700 lines) goes to a log file in the image's store instead, and on
// failure its path and last lines are printed, so nothing is lost.
//
//   <root>/.images/NAME/logs/<UTC time>-<what>.log     the last logKeep of them
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { log, setLiveLine, writeAll } from '../log.mts';
import type { ToolLineParser } from './progress-parsers.mts';

/** Log files kept per image. */
const logKeep = 10;
/** The live line is redrawn at most this often, and at least once a second for the clock. */
const redrawMs = 100;

export interface ProgressOptions {
  /** Who the work is for, such as "image bookworm". */
  label: string;
  /** Directory of the log files, created when missing. */
  logDir: string;
  /** What the work is, in the log file's name: create, update, convert... */
  what: string;
  /** A live line (a terminal) or plain lines. */
  live: boolean;
  /** Width of the terminal. */
  columns?: number;
  now?: () => number;
  /** Where the lines go: stderr by default. */
  write?: (text: string) => void;
}

export interface Progress {
  readonly logPath: string;
  /** A new phase: a plain line without a terminal, the head of the live line on one. */
  phase(name: string): void;
  /** What the phase has got to: "87/112 packages", "task 3/9: apt". */
  detail(text: string): void;
  /** A tool's output: into the log file, and each line through parser. */
  output(chunk: string, parser?: ToolLineParser): void;
  /** The work succeeded. */
  done(summary: string): void;
  /** The work failed: prints where the full output is and its last lines. */
  fail(lines?: number): void;
}

export function formatElapsed(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}

function logStamp(now: number): string {
  return new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Removes the oldest log files, keeping keep of them. */
export function pruneLogs(dir: string, keep = logKeep): void {
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.endsWith('.log')).sort();
  } catch {
    return;
  }
  for (const name of names.slice(0, Math.max(0, names.length - keep))) rmSync(`${dir}/${name}`, { force: true });
}

export function startProgress(options: ProgressOptions): Progress {
  const now = options.now ?? Date.now;
  const write = options.write ?? ((text: string) => writeAll(2, text));
  const started = now();
  mkdirSync(options.logDir, { recursive: true, mode: 0o755 });
  pruneLogs(options.logDir, logKeep - 1);
  const logPath = `${options.logDir}/${logStamp(started)}-${options.what}.log`;
  const logFd = openSync(logPath, 'a', 0o644);
  let phase = 'starting';
  let detail = '';
  let partial = '';
  let lastDraw = 0;
  let shown = false;
  let ended = false;
  /** A detail that came too soon after the last draw is drawn when its time comes, unless another draw came first. */
  let pending: NodeJS.Timeout | undefined;

  const toLog = (text: string) => writeSync(logFd, text);
  const line = () => {
    const text = `nspawn-runner: ${options.label}: ${phase}${detail ? `, ${detail}` : ''} (${formatElapsed(now() - started)})`;
    // A terminal that reports no size (a bare pseudo-terminal) gets 80 columns.
    const width = (options.columns && options.columns >= 20 ? options.columns : 80) - 1;
    return text.length > width ? `${text.slice(0, width - 1)}…` : text;
  };
  const draw = () => {
    clearTimeout(pending);
    pending = undefined;
    if (ended) return;
    write(`\r\x1b[K${line()}`);
    shown = true;
    lastDraw = now();
  };
  const clear = () => {
    if (shown) write('\r\x1b[K');
    shown = false;
  };
  const timer = options.live ? setInterval(draw, 1000) : undefined;
  timer?.unref();
  // Other messages (warnings, say) clear the live line and get it back after.
  if (options.live) setLiveLine({ clear, redraw: draw });
  const finish = () => {
    ended = true;
    clearInterval(timer);
    clearTimeout(pending);
    if (options.live) {
      clear();
      setLiveLine(undefined);
    }
    if (partial) toLog('\n');
    closeSync(logFd);
  };

  const setPhase = (name: string) => {
    if (name === phase) return false;
    phase = name;
    detail = '';
    if (options.live) draw();
    else log.info(`${options.label}: ${name}`);
    return true;
  };

  toLog(`# nspawn-runner ${options.label}: ${options.what}, started ${new Date(started).toISOString()}\n`);
  return {
    logPath,
    phase(name) {
      // Phases read from a tool's output are in the log already, as its own lines.
      if (setPhase(name)) toLog(`${partial ? '\n' : ''}# phase: ${name}\n`);
      partial = '';
    },
    detail(text) {
      detail = text;
      if (!options.live) return;
      const wait = lastDraw + redrawMs - now();
      if (wait <= 0) draw();
      else pending ??= setTimeout(draw, wait);
    },
    output(chunk, parser) {
      toLog(chunk);
      if (!parser) return;
      const lines = (partial + chunk).split(/\r?\n|\r/);
      partial = lines.pop()!;
      for (const text of lines) {
        const update = parser(text);
        if (update?.phase) setPhase(update.phase);
        if (update?.detail) this.detail(update.detail);
      }
    },
    done(summary) {
      toLog(`# done: ${summary}\n`);
      finish();
      log.info(`${options.label}: ${summary} in ${formatElapsed(now() - started)}`);
    },
    fail(lines = 20) {
      toLog(`# failed in phase ${phase}\n`);
      finish();
      const tail = readFileSync(logPath, 'utf8').split('\n').filter((text) => text && !text.startsWith('# ')).slice(-lines);
      log.error(`${options.label}: failed in phase "${phase}" after ${formatElapsed(now() - started)}; full output: ${logPath}` +
        (tail.length ? `; its last ${tail.length} lines:` : ''));
      if (tail.length) write(`${tail.map((text) => `  ${text}`).join('\n')}\n`);
    },
  };
}
