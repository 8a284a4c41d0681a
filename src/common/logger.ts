import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

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

/** Console lines waiting to be written beyond which new ones are dropped (see below). */
const CONSOLE_BACKLOG_BYTES = 1024 * 1024;

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
  const file = pino.destination({ dest: options.file, sync: false, mkdir: true });
  const level = options.level ?? 'info';
  const streams: pino.StreamEntry[] = [{ level: level as pino.Level, stream: file }];
  // The console is a courtesy and the file the record: console lines are written in the
  // background and dropped past CONSOLE_BACKLOG_BYTES. Written synchronously, a server
  // whose stdout was a pipe nobody read (a supervisor's, a paused `| less`) stopped
  // dead once 64 KiB of lines filled it, holding every request it had.
  // A write the pipe refuses is tried again later, except once the server is stopping:
  // its last flush gives up rather than wait for a reader that may never come.
  let stopping = false;
  const consoleOut =
    options.console === false
      ? undefined
      : pino.destination({
          dest: 1,
          sync: false,
          maxLength: CONSOLE_BACKLOG_BYTES,
          retryEAGAIN: () => !stopping,
        });
  // Nor does a console that went away (EPIPE) stop the server.
  consoleOut?.on('error', () => undefined);
  if (consoleOut) {
    streams.push({
      level: level as pino.Level,
      stream: pretty({
        colorize: process.stdout.isTTY === true,
        ignore: 'pid,hostname,component',
        translateTime: 'SYS:HH:MM:ss',
        messageFormat: '{if component}{component}: {end}{msg}',
        singleLine: true,
        destination: consoleOut,
      }),
    });
  }
  const log = pino(
    { name: options.name, level, redact: { paths: REDACT, censor: '[secret]' } },
    pino.multistream(streams),
  );
  return {
    log,
    flush: () => {
      stopping = true;
      for (const out of [file, consoleOut]) {
        try {
          out?.flushSync();
        } catch {
          // Nothing buffered yet, the stream is already closed, or nobody reads the console.
        }
      }
    },
  };
}

/** A logger that drops everything, for unit tests that don't look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
