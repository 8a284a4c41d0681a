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
  /** Writes out anything buffered; call before the process exits. */
  flush(): void;
}

export function createServerLogger(options: LoggerOptions): ServerLogger {
  mkdirSync(dirname(options.file), { recursive: true });
  const file = pino.destination({ dest: options.file, sync: false, mkdir: true });
  const level = options.level ?? 'info';
  const streams: pino.StreamEntry[] = [{ level: level as pino.Level, stream: file }];
  if (options.console !== false) {
    streams.push({
      level: level as pino.Level,
      stream: pretty({
        colorize: process.stdout.isTTY === true,
        ignore: 'pid,hostname,component',
        translateTime: 'SYS:HH:MM:ss',
        messageFormat: '{if component}{component}: {end}{msg}',
        singleLine: true,
        sync: true,
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
      try {
        file.flushSync();
      } catch {
        // Nothing buffered yet, or the stream is already closed.
      }
    },
  };
}

/** A logger that drops everything, for unit tests that don't look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
