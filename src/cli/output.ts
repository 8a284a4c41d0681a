import { SedfsError } from '../protocol/errors.js';
import { endInterrupted, Interrupted } from './interrupt.js';

/**
 * True for a write that failed because its reader went away (`sedfs ls | head`): EPIPE,
 * or on Windows EOF, as libuv names a pipe whose reading end was closed.
 */
export function readerGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EPIPE' || code === 'EOF';
}

/** An error as one line: names in it cannot break it (see printableName). */
export function describeError(err: unknown): string {
  if (err instanceof SedfsError) return printableName(`${err.message} (${err.code})`);
  if (err instanceof Error) return printableName(err.message);
  return printableName(String(err));
}

/**
 * Control characters and bidirectional overrides shown as `?`, as `ls` does on a
 * terminal. Remote names come from whoever can write to a shared folder: printed raw,
 * a name could move the cursor, retitle the terminal, or show `txt.exe` as `exe.txt`.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, '?');
}

/** One name on one line: also line breaks and tabs as `?`, so a name cannot fake rows of a listing. */
export function printableName(name: string): string {
  return printable(name).replace(LINE_BREAKING, '?');
}
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are what it replaces
const UNPRINTABLE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const LINE_BREAKING = /[\t\n\u2028\u2029]/g;

/**
 * Ends the process for a failure: the one clear line on stderr that the CLI contract
 * promises and status 1, or as its interrupt would have.
 */
export function fail(err: unknown): never {
  if (err instanceof Interrupted) endInterrupted(err.signal);
  process.stderr.write(`sedfs: ${describeError(err)}\n`);
  process.exit(1);
}

/**
 * A time as the system's `ls -l` shows it: in this machine's time zone,
 * `YYYY-MM-DD HH:MM:SS`. (UTC, as it was, put a listing hours off its files' times for
 * anyone outside UTC, with nothing saying so.)
 */
export function localTimestamp(ms: number): string {
  const t = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())} ${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Fixed-width columns for human-readable listings. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/**
 * Stops a server cleanly on Ctrl-C, SIGTERM, or its console going away (SIGHUP; on
 * Windows also Ctrl-Break, and closing the window, which never sends SIGTERM); a second
 * signal exits at once. Called just before the server starts, with `whenUp` once it
 * has: a signal in between (a script that saw `<data>/join` appear and stopped the
 * server at once) stops it as soon as it is up, instead of killing it half-started.
 * `signal` aborts at the first one, for start-up waits that could last (a file server
 * waiting for an unreachable main), which then end the start with `stoppedEarly`.
 */
export function stopOnSignal(): {
  signal: AbortSignal;
  whenUp(close: () => Promise<void>): void;
  stoppedEarly(err: unknown): never;
} {
  const asked = new AbortController();
  let close: (() => Promise<void>) | undefined;
  const stop = (c: () => Promise<void>) =>
    c().then(
      () => process.exit(0),
      (err) => fail(err),
    );
  const onSignal = () => {
    if (asked.signal.aborted) process.exit(130);
    asked.abort();
    if (close) stop(close);
    else process.stderr.write('sedfs: stopping once start-up ends (again to stop at once)\n');
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  if (process.platform === 'win32') process.on('SIGBREAK', onSignal);
  return {
    signal: asked.signal,
    whenUp(c) {
      close = c;
      if (asked.signal.aborted) stop(c);
    },
    stoppedEarly(err) {
      if (!asked.signal.aborted) return fail(err);
      // Asked to stop while starting, and the start gave up: that is the stop asked for
      // (what it gave up on is still said, in case it was a failure of its own).
      process.stderr.write(`sedfs: stopped while starting (${describeError(err)})\n`);
      process.exit(0);
    },
  };
}
