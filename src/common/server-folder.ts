import { readFileSync, rmSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { uptime } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SedfsError } from '../protocol/errors.js';
import { dataFolderSync, makeDataFolder } from './files.js';
import { lockFolder } from './folder-lock.js';
import { createServerLogger, type ServerLogger } from './logger.js';

/** A server's data folder, held for it (see holdDataFolder), and its log. */
export type ServerFolder = ServerLogger & {
  syncDirectory: (dir: string) => Promise<void>;
  /** lets the data folder go (see holdDataFolder): when the server stops */
  release: () => void;
};

/** What a server's folder is opened with, besides its config's and deps' parts. */
interface FolderOptions {
  /** the process's name in its log, and its log file's (`<name>.log`) */
  name: 'main' | 'fileserver';
  /** what a crash may cost where directories cannot be synced, for the warning */
  keptAcrossCrash: string;
}

/**
 * Starts a server in its data folder (see openServerFolder): a start that fails lets the
 * folder go, so one started again in this process (`sedfs dev`, a test) holds it at once
 * instead of finding its lock held by itself and going on without it.
 */
export async function startInServerFolder<T>(
  opts: FolderOptions,
  config: { data: string; logLevel: string },
  deps: { console?: boolean; syncDir?: (dir: string) => Promise<void> },
  start: (folder: ServerFolder) => Promise<T>,
): Promise<T> {
  const folder = await openServerFolder({
    ...opts,
    data: config.data,
    level: config.logLevel,
    console: deps.console ?? true,
    syncDir: deps.syncDir,
  });
  try {
    return await start(folder);
  } catch (err) {
    folder.flush();
    folder.release();
    throw err;
  }
}

/**
 * What main and a file server do first: make their data folder (durably, and private to
 * this user on Windows), hold it, open their log in it, and tell that log what the folder
 * could not do, which was found before the log existed.
 */
async function openServerFolder(
  opts: FolderOptions & {
    data: string;
    level: string;
    console: boolean;
    syncDir: ((dir: string) => Promise<void>) | undefined;
  },
): Promise<ServerFolder> {
  // One for all of the server's writes, so a folder that cannot sync directories is told once, not per file.
  const folder = dataFolderSync(opts.syncDir);
  // Durable from the start: what is made in it is only as durable as its entry.
  const made = await makeDataFolder(opts.data, folder.sync);
  const release = await holdDataFolder(opts.data, opts.name);
  let logger: ServerLogger;
  try {
    logger = createServerLogger({
      file: join(opts.data, `${opts.name}.log`),
      name: opts.name,
      level: opts.level,
      console: opts.console,
    });
  } catch (err) {
    release();
    throw err;
  }
  const { log, flush } = logger;
  if (made.notRestricted)
    log.warn(
      { dir: opts.data, reason: made.notRestricted.message },
      'could not restrict the new data folder to this user with icacls: other users of this machine may read it; restrict it by hand (see docs/operations.md)',
    );
  folder.tellTo((dir, code) =>
    log.warn(
      { dir, code },
      `this file system cannot fsync directories: carrying on; ${opts.keptAcrossCrash} here survive a crash only as far as it keeps renames (said once)`,
    ),
  );
  return { log, flush, syncDirectory: folder.sync, release };
}

const HOLDER_FILE = 'server.pid';

/**
 * Holds the data folder for this process, refusing one another running server holds: two
 * servers on one folder clear each other's writes in progress at start, compact packs
 * the other still reads, and count the same chunks twice. `server.pid` names the process
 * holding it and, where the system gives one (folder-lock.ts), the lock it holds, which
 * the system lets go when that process ends. The mark refuses a start while its process
 * runs, unless this start now holds the very lock the mark names: that holder is gone,
 * whatever process Windows has given its id since. Otherwise, as before the lock: a mark
 * left by a process that is gone (killed, crashed) is taken over; one of this process (a
 * server started again in a test) too, and one written before the machine last started,
 * whose process id another process may have now. A lock held by something that left no
 * running mark (a program that took a name it saw, or an earlier start of this process
 * that failed) refuses nothing: the start goes on without it. Returns what lets go.
 */
export async function holdDataFolder(
  data: string,
  name: string,
  platform: NodeJS.Platform = process.platform,
): Promise<() => void> {
  const file = join(data, HOLDER_FILE);
  const taken = await lockFolder(data, platform);
  const lock = taken === 'held' ? undefined : taken;
  let { holder, markedLock, running } = await readMark(file);
  // A start that took the lock a moment ago writes its mark a moment later.
  for (let waited = 0; taken === 'held' && !running && waited < MARK_WAIT_MS; waited += 50) {
    await sleep(50);
    ({ holder, markedLock, running } = await readMark(file));
  }
  if (running && !(lock && lock.name === markedLock)) {
    lock?.release();
    // Held by the lock its mark names: removing the mark would not help.
    const sure = taken === 'held' && markedLock !== undefined;
    throw new SedfsError(
      'SEDFS_ERR_CONFIG',
      `another server (process ${holder}) is using the data folder ${data}: two would destroy each other's work. Stop it first${sure ? '' : `, or, if no server runs there, remove ${file}`}`,
    );
  }
  await writeFile(file, `${process.pid}\n${name}\n${lock ? `lock ${lock.name}\n` : ''}`, { mode: 0o644 });
  return () => {
    try {
      if (readFileSync(file, 'utf8').startsWith(`${process.pid}\n`)) rmSync(file, { force: true });
    } catch {
      // Gone already, or the folder with it: nothing to let go.
    }
    lock?.release();
  };
}

/** How long a start that found the lock held waits for its holder's mark. */
const MARK_WAIT_MS = 1000;

/** What `server.pid` says: which process, the lock it held, and whether that process may still run. */
async function readMark(
  file: string,
): Promise<{ holder: number | undefined; markedLock: string | undefined; running: boolean }> {
  const mark = await readFile(file, 'utf8').catch(() => undefined);
  const [pid, , lockLine] = mark?.split('\n') ?? [];
  const holder = pid === undefined ? undefined : Number.parseInt(pid, 10);
  const markedLock = lockLine?.startsWith('lock ') ? lockLine.slice('lock '.length) : undefined;
  const running =
    holder !== undefined &&
    holder > 0 &&
    holder !== process.pid &&
    isRunning(holder) &&
    !(await writtenBeforeBoot(file));
  return { holder, markedLock, running };
}

/** Whether a file was last written before the machine started (a minute's slack for clocks). */
async function writtenBeforeBoot(file: string): Promise<boolean> {
  const bootedAt = Date.now() - uptime() * 1000;
  const written = await stat(file).then(
    (st) => st.mtimeMs,
    () => Number.POSITIVE_INFINITY,
  );
  return written < bootedAt - 60_000;
}

/** Whether a process with this id exists (one of another user's counts: EPERM). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
