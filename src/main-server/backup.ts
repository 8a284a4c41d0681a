import { existsSync, rmSync } from 'node:fs';
import { chmod, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { makeDataFolder, renameReplacing, syncDir, writeFileAtomic } from '../common/files.js';
import { SedfsError } from '../protocol/errors.js';

/**
 * Main's secrets and keys a restored main needs beside `main.db`, relative to its data
 * folder: without the CA every file server and client must be re-joined and re-pinned,
 * without the ticket key every ticket in flight fails. `join-token` is absent where
 * the token comes from main's settings; `join` and main's own certificate are made
 * again at each start.
 */
const KEY_FILES = [
  { path: 'ticket-key.pem', required: true },
  { path: join('tls', 'ca.pem'), required: false },
  { path: join('tls', 'ca-key.pem'), required: false },
  { path: 'join-token', required: false },
];

export interface BackupSummary {
  /** bytes of the database snapshot */
  databaseBytes: number;
  /** key files copied, relative to the data folder */
  keys: string[];
}

/**
 * Copies main's state into `dest`, which becomes a main data folder: start main with
 * `--data` there (or copy its files into an empty one) to restore it. Main may be
 * running: the database is copied with SQLite's `VACUUM INTO`, one read transaction, so
 * the copy is a consistent snapshot whatever main writes meanwhile (the online backup
 * API starts over whenever another connection writes, and main writes at every
 * heartbeat). Copying `main.db` as a file could take half a transaction.
 *
 * A restored main knows nothing that happened after the snapshot, and the file servers
 * have changed since: the copy records no full inventory from any of them, so the
 * restored main asks each one for its whole inventory at its first pass, instead of
 * trusting what their heartbeats tell of changes since.
 */
export async function backupMain(
  data: string,
  dest: string,
  events: {
    /** the new folder could not be made private on Windows (icacls failed) */
    onNotRestricted?: (err: Error) => void;
    /** `dest` was made here, so it is this backup's to remove if it is interrupted */
    onMade?: () => void;
  } = {},
): Promise<BackupSummary> {
  const source = join(data, 'main.db');
  if (!existsSync(source))
    throw new SedfsError('SEDFS_ERR_CONFIG', `${data} holds no main.db: is it a main server's data folder?`);
  // A folder of its own, made here, so it is made private: it holds the CA key, the
  // ticket key, the join token and every server's receipt key. One that existed would
  // keep whatever permissions it had (on Windows, often readable by every user).
  if (existsSync(dest))
    throw new SedfsError(
      'SEDFS_ERR_CONFIG',
      `${dest} exists: back up into a new folder (sedfs makes it, private to you)`,
    );
  const { notRestricted } = await makeDataFolder(dest, syncDir);
  events.onMade?.();
  if (notRestricted) events.onNotRestricted?.(notRestricted);
  try {
    if (process.platform !== 'win32') await chmod(dest, 0o700);
    return await copyInto(data, source, dest);
  } catch (err) {
    // Half a backup is no backup, and holds secrets: the folder made here goes.
    const left = removeUnfinishedBackup(dest);
    if (left) (err as Error).message += ` (${left})`;
    throw err;
  }
}

/**
 * Removes an unfinished backup's folder, tried again for a while where another program
 * (a virus scanner, an indexer) holds a file in it on Windows; what to tell the user if
 * it could not be removed, which they must do, as it holds main's keys.
 */
export function removeUnfinishedBackup(dest: string, remove = rmSync): string | undefined {
  try {
    remove(dest, { recursive: true, force: true, maxRetries: 5 });
    return undefined;
  } catch (err) {
    return `the unfinished backup at ${dest} could not be removed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): it holds main's keys; remove it yourself`;
  }
}

async function copyInto(data: string, source: string, dest: string): Promise<BackupSummary> {
  const keys: string[] = [];
  for (const key of KEY_FILES) {
    const from = join(data, key.path);
    if (!existsSync(from)) {
      if (key.required)
        throw new SedfsError('SEDFS_ERR_CONFIG', `${from} is missing: main cannot run without it`);
      continue;
    }
    await writeFileAtomic(join(dest, key.path), await readFile(from), 0o600);
    keys.push(key.path);
  }
  const target = join(dest, 'main.db');
  const partial = join(dest, '.main.db.partial');
  try {
    snapshot(source, partial);
    // VACUUM INTO makes the file with the umask's mode, and does not sync it.
    await chmod(partial, 0o600);
    const fh = await open(partial, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await renameReplacing(partial, target);
    await syncDir(dest);
  } finally {
    await rm(partial, { force: true });
  }
  return { databaseBytes: (await stat(target)).size, keys };
}

function snapshot(source: string, into: string): void {
  // Read only: with main stopped, a read-write connection would checkpoint main.db as it
  // closed, and could leave -wal and -shm files owned by whoever ran the backup.
  const db = new Database(source, { readonly: true, fileMustExist: true });
  try {
    // Main holds write locks for moments at a time; wait them out rather than fail.
    db.pragma('busy_timeout = 10000');
    db.prepare('VACUUM INTO ?').run(into);
  } finally {
    db.close();
  }
  const copy = new Database(into, { fileMustExist: true });
  try {
    const check = copy.pragma('quick_check', { simple: true });
    if (check !== 'ok')
      throw new SedfsError('SEDFS_ERR_CONFIG', `the copy of main.db does not check out: ${check}`);
    copy.prepare('UPDATE servers SET inventory_at = 0').run();
  } finally {
    copy.close();
  }
}
