import { fstatSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import sonicBoom from 'sonic-boom';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** JSON-lines log file, one per server process, inside its data folder. */
  file: string;
  /** Name shown on console lines and stored as `name` in the file. */
  name: string;
  level?: string;
  /** Readable lines on stdout as well as the file (default true). */
  console?: boolean;
}

// sonic-boom is CommonJS whose module.exports is the class; its types declare it as the
// default export of an ES module, which TypeScript then reads as a namespace.
const SonicBoom = sonicBoom as unknown as typeof import('sonic-boom').SonicBoom;

/** Console lines waiting to be written beyond which new ones are dropped (see below). */
const CONSOLE_BACKLOG_BYTES = 1024 * 1024;
/**
 * Log-file lines waiting to be written beyond which new ones are dropped: a log that
 * cannot be written (a full disk) must not grow in memory without bound meanwhile.
 */
const FILE_BACKLOG_BYTES = 16 * 1024 * 1024;

/** Paths that could carry secrets; pino replaces them before anything is written. */
const REDACT = [
  'req.headers.authorization',
  'req.headers["x-sedfs-ticket"]',
  'headers.authorization',
  'ticket',
  'token',
  'joinToken',
  'receiptKey',
];

export interface ServerLogger {
  log: Logger;
  /** Writes out anything buffered; call once, as the process stops. */
  flush(): void;
}

export function createServerLogger(options: LoggerOptions): ServerLogger {
  mkdirSync(dirname(options.file), { recursive: true });
  const file = pino.destination({
    dest: options.file,
    sync: false,
    mkdir: true,
    maxLength: FILE_BACKLOG_BYTES,
  });
  // A log file that cannot be written (ENOSPC, EDQUOT, EIO) must not stop the server: an
  // 'error' nobody listened for ended the process. Its lines wait (up to the backlog) and
  // are written once it can be again; the console has them meanwhile.
  let failing = false;
  file.on('error', (err: NodeJS.ErrnoException) => {
    if (failing) return;
    failing = true;
    log.error(
      { file: options.file, code: err.code },
      'the log file cannot be written: its lines wait in memory (then are dropped) until it can; the console has them',
    );
  });
  file.on('write', () => {
    if (!failing) return;
    failing = false;
    log.warn({ file: options.file }, 'the log file is written again (lines past the backlog were dropped)');
  });
  const level = options.level ?? 'info';
  const streams: pino.StreamEntry[] = [{ level: level as pino.Level, stream: file }];
  const shown = options.console === false ? undefined : consoleStream();
  if (shown) streams.push({ level: level as pino.Level, stream: shown });
  const log = pino(
    { name: options.name, level, redact: { paths: REDACT, censor: '[secret]' } },
    pino.multistream(streams),
  );
  return {
    log,
    flush: () => {
      try {
        file.flushSync();
      } catch {
        // Nothing buffered yet, or the stream is already closed.
      }
      shown?.stop();
    },
  };
}

/**
 * Readable lines on stdout, written in the background. The console is a courtesy and the
 * file the record: lines waiting past CONSOLE_BACKLOG_BYTES are dropped, a console that
 * fails (EPIPE, EIO) is given up, and stopping gives up on a full pipe. Written
 * synchronously, a server whose stdout was a pipe nobody read (a supervisor's, a paused
 * `| less`) stopped dead once 64 KiB of lines filled it, holding every request it had.
 * Each line is formatted here and written straight to a SonicBoom of our own: behind
 * pino-pretty's own stream, which pauses at 16 KiB while pino goes on writing into it,
 * nothing is ever dropped and the backlog grows in memory; and pino's own destinations
 * flush synchronously at exit, which on a full pipe never ends.
 */
function consoleStream(): { write(line: string): void; stop(): void } {
  const format = prettyFactory({
    colorize: process.stdout.isTTY === true,
    ignore: 'pid,hostname,component',
    translateTime: 'SYS:HH:MM:ss',
    messageFormat: '{if component}{component}: {end}{msg}',
    singleLine: true,
  });
  let stopping = false;
  let failed = false;
  const out = new SonicBoom({
    fd: 1,
    sync: false,
    maxLength: CONSOLE_BACKLOG_BYTES,
    // A write the pipe refuses now is tried again later, unless the server is stopping.
    retryEAGAIN: () => !stopping,
  });
  out.on('error', () => {
    failed = true;
  });
  return {
    write(line) {
      if (!failed) out.write(format(line));
    },
    stop() {
      stopping = true;
      // On Windows a write to a full pipe blocks rather than failing with EAGAIN, so a
      // final flush into one could wait forever (untested there: see docs/operations.md).
      if (failed || (process.platform === 'win32' && stdoutIsPipe())) return;
      try {
        out.flushSync();
      } catch {
        // Nobody reads the console, or it is gone: the file has every line.
      }
    },
  };
}

/**
 * Whether stdout is a pipe (or a socket). Node's `isFIFO()` is always false on Windows,
 * so there anything that is neither a file nor a console counts as one.
 */
function stdoutIsPipe(): boolean {
  try {
    const st = fstatSync(1);
    return process.platform === 'win32' ? !st.isFile() && !st.isCharacterDevice() : st.isFIFO();
  } catch {
    return false;
  }
}

/**
 * Says something at most once a minute however often it happens (a put of thousands of
 * chunks to a full disk is one line, not thousands), with how many times since it last did.
 */
export function atMostOnceAMinute<T>(
  say: (times: number, latest: T) => void,
  now: () => number = Date.now,
): { note(latest: T): void } {
  let last = Number.NEGATIVE_INFINITY;
  let times = 0;
  return {
    note(latest) {
      times += 1;
      if (now() - last < 60_000) return;
      last = now();
      say(times, latest);
      times = 0;
    },
  };
}

/** A logger that drops everything, for unit tests that don't look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
