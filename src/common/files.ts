import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  chmod,
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
} from 'node:fs/promises';
import { basename, dirname, join, resolve, win32 } from 'node:path';
import { promisify } from 'node:util';
import { randomHexId } from '../crypto/hash.js';

/**
 * Writes a file so that readers see either the old content or all of the new, never a
 * part. `sync` makes the rename durable (see syncDirWhereSupported).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
  sync: (dir: string) => Promise<void> = syncDir,
): Promise<void> {
  // A folder made for the file is made durably too: the file is only as durable as
  // the folder's own entry.
  await mkdirDurable(dirname(path), sync);
  const tmp = join(dirname(path), `.${randomHexId(6)}.tmp`);
  const fh = await open(tmp, 'w', mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    // open()'s mode is masked by the umask; secrets must end up 0600 whatever it is.
    await chmod(tmp, mode);
    await renameReplacing(tmp, path);
  } catch (err) {
    // What failed (a full disk) must not leave a copy behind: a session's holds unlocked keys.
    await rm(tmp, { force: true });
    throw err;
  }
  await sync(dirname(path));
}

export interface RenameOptions {
  platform?: NodeJS.Platform;
  move?: (from: string, to: string) => Promise<void>;
  /** waiting in all for a file held open on Windows (~1.3 s unless told) */
  patienceMs?: number;
  /** makes the rename durable on Windows (flushRenamed unless told) */
  flush?: (path: string) => Promise<void>;
}

/**
 * Renames `from` over `to`. On Windows a file another process (a virus scanner, an
 * indexer, a reader) holds open cannot be replaced for a moment: EPERM, EACCES or
 * EBUSY are tried again there, for `patienceMs` of waiting in all (graceful-fs, for
 * npm, waits longer), at most a second between tries; and the rename is made durable
 * there by flushing the file under its new name (see flushRenamed). Elsewhere the
 * replacement is atomic and immediate, and the caller syncs the folder (syncDir).
 */
export async function renameReplacing(from: string, to: string, opts: RenameOptions = {}): Promise<void> {
  const { platform = process.platform, move = rename, patienceMs = 1270, flush = flushRenamed } = opts;
  for (let wait = 10, waited = 0; ; waited += wait, wait = Math.min(wait * 2, 1000)) {
    try {
      await move(from, to);
      break;
    } catch (err) {
      if (!heldOpen(err, platform) || waited >= patienceMs) throw err;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
  if (platform === 'win32') await flush(to);
}

/**
 * Windows cannot open a folder to sync it, which is what makes a rename durable
 * elsewhere. Flushing the renamed file writes NTFS's journal out as far as that file's
 * changes, the rename among them (PostgreSQL's durable rename does the same there; not
 * promised by Microsoft's documentation, so as durable as NTFS makes it). A folder, or
 * a file this process may not write, has nothing to flush this way and is left as it is.
 */
export async function flushRenamed(path: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r+');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR' || code === 'EPERM' || code === 'EACCES') return;
    throw err;
  }
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Removes a file whose name may be wanted again at once (a chunk's). On Windows a file
 * deleted while another handle has it open (a download or repair copy reading the chunk)
 * keeps its name, pending deletion, until that handle closes: a file of that name cannot
 * be made or renamed into place meanwhile (EPERM). There it is first renamed into
 * `aside` (a folder cleared at start), which frees the name at once, and removed from
 * there. Elsewhere a removed name is free at once.
 */
export async function removeFreeingName(
  path: string,
  aside: string,
  platform: NodeJS.Platform = process.platform,
  remove: (path: string) => Promise<void> = (p) => rm(p, { force: true }),
): Promise<void> {
  if (platform !== 'win32') return remove(path);
  const parked = join(aside, `${basename(path)}.${randomHexId(6)}.removed`);
  try {
    await rename(path, parked);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    // Cannot be moved (held without leave to delete it): removed where it is, if it can be.
    return remove(path);
  }
  await remove(parked);
}

/** Whether a rename failed on Windows because another handle holds the file open (EPERM, EACCES, EBUSY). */
export function heldOpen(err: unknown, platform: NodeJS.Platform = process.platform): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return platform === 'win32' && (code === 'EPERM' || code === 'EACCES' || code === 'EBUSY');
}

/**
 * Whether opening a file failed because it is gone. On Windows a file deleted while
 * another handle still has it open lingers, pending deletion, and opening it fails
 * with EPERM, not ENOENT (untested there: see docs/operations.md).
 */
export function isGone(err: unknown, platform: NodeJS.Platform = process.platform): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || (platform === 'win32' && code === 'EPERM');
}

/** Whether a file-system call failed because the disk, or the user's quota on it, is full. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * Makes a rename in `dir` durable. Windows cannot open a folder: there renameReplacing
 * flushes the renamed file instead.
 */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * How a file system says it cannot fsync a directory at all: EINVAL (Linux's answer
 * where the file system has no such operation: some network and FUSE ones), ENOTSUP,
 * EBADF, EISDIR (other systems'). Nothing can be done about it there, and failing every
 * write for it only makes the server useless; any other error is a real failure.
 */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EBADF', 'EISDIR']);

/**
 * A directory sync for a server whose data folder may be on such a file system: a refusal
 * is taken as "this file system cannot sync directories" (renames there are as durable
 * as it makes them) and the write goes on; `onUnsupported` hears of the first one only,
 * not one per chunk. Every directory is still tried: a folder inside may be another mount.
 */
export function syncDirWhereSupported(
  onUnsupported: (dir: string, code: string) => void,
  sync: (dir: string) => Promise<void> = syncDir,
): (dir: string) => Promise<void> {
  let told = false;
  return async (dir) => {
    try {
      await sync(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === undefined || !DIR_SYNC_UNSUPPORTED.has(code)) throw err;
      if (told) return;
      told = true;
      onUnsupported(dir, code);
    }
  };
}

/**
 * `syncDirWhereSupported` for a server's data folder, which is made (durably) before the
 * log inside it can say anything: a refusal met before `tellTo` is told to it then.
 */
export function dataFolderSync(sync: (dir: string) => Promise<void> = syncDir): {
  sync: (dir: string) => Promise<void>;
  tellTo(tell: (dir: string, code: string) => void): void;
} {
  let early: { dir: string; code: string } | undefined;
  let tell: ((dir: string, code: string) => void) | undefined;
  return {
    sync: syncDirWhereSupported((dir, code) => {
      if (tell) tell(dir, code);
      else early = { dir, code };
    }, sync),
    tellTo(fn) {
      tell = fn;
      if (early) fn(early.dir, early.code);
    },
  };
}

/**
 * `mkdir -p` whose new directories survive a power loss: a directory's entry is in its
 * parent, so the parent of each one made is fsynced, the deepest first. One that existed
 * already is taken as durable (whoever made it did this). Files fsynced into a directory
 * whose own entry is lost are lost with it.
 */
export async function mkdirDurable(
  dir: string,
  sync: (dir: string) => Promise<void> = syncDir,
  /** of the directories made (a secrets folder: 0o700) */
  mode?: number,
): Promise<{ made: boolean }> {
  const first = await mkdir(dir, { recursive: true, ...(mode === undefined ? {} : { mode }) });
  if (first === undefined) return { made: false };
  const top = resolve(first);
  for (let made = resolve(dir); ; made = dirname(made)) {
    await sync(dirname(made));
    if (made === top || dirname(made) === made) return { made: true };
  }
}

/** Runs a program without a shell (its arguments are never interpreted) and gives its output. */
export type RunProgram = (file: string, args: string[]) => Promise<string>;

const runProgram: RunProgram = async (file, args) =>
  (await promisify(execFile)(file, args, { windowsHide: true, timeout: 60_000 })).stdout;

/**
 * Makes a server's data folder, durably (mkdirDurable). On Windows file modes mean
 * nothing (the keys' 0600 included) and a new folder takes its parent's permissions:
 * under `C:\` every signed-in user may write it, under `C:\ProgramData` read it, with
 * the CA key, ticket key and join token in it. So a folder made here is restricted
 * with icacls to this user, plus SYSTEM and Administrators, who can take any file
 * anyway (leaving them out would only break backups). One that existed keeps the
 * permissions someone gave it. The folder is made and restricted under a name of its
 * own beside it, then renamed into place (NTFS keeps a folder's own permissions when it
 * moves): made in place, a crash between the two left a folder open to everyone that
 * the next start took as one that existed. A restriction that fails leaves the folder
 * usable and is given back (`notRestricted`) for the caller's log, which lives in it.
 */
export async function makeDataFolder(
  dir: string,
  sync: (dir: string) => Promise<void> = syncDir,
  platform: NodeJS.Platform = process.platform,
  run: RunProgram = runProgram,
): Promise<{ notRestricted?: Error }> {
  if (platform !== 'win32') {
    await mkdirDurable(dir, sync);
    return {};
  }
  // `D:\data\` names D:\data: staged as `D:\data\.new-…`, the folder would be staged
  // inside the one it is to become, which would be made open to everyone on the way.
  const bare = dir.replace(/(?<=[^\\/:])[\\/]+$/, '');
  await removeLeftStaged(bare);
  if (existsSync(dir)) {
    await mkdirDurable(dir, sync);
    return {};
  }
  const staged = `${bare}.new-${randomHexId().slice(0, 8)}`;
  await mkdirDurable(staged, sync);
  let notRestricted: Error | undefined;
  try {
    await restrictToThisUser(staged, run);
  } catch (err) {
    notRestricted = err as Error;
  }
  try {
    // Again while a virus scanner or an indexer holds the new folder (EPERM, EBUSY).
    await renameReplacing(staged, bare, { platform });
  } catch (err) {
    await rm(staged, { recursive: true, force: true });
    // Made meanwhile by another start: it keeps what that one gave it.
    if (existsSync(bare)) return {};
    throw err;
  }
  await sync(dirname(bare));
  return notRestricted ? { notRestricted } : {};
}

/**
 * A staged data folder younger than this may be another start's, under way: restricting
 * one runs two programs, each allowed 60 s.
 */
const STAGED_LEFT_AFTER_MS = 10 * 60_000;

/**
 * Removes what a start that crashed while making `bare` left beside it: empty folders
 * named as `makeDataFolder` stages them, older than ten minutes. Anything else, or one
 * holding files, is left; failures only mean one stays.
 */
async function removeLeftStaged(bare: string, now = Date.now()): Promise<void> {
  const name = basename(bare);
  const parent = dirname(bare);
  const entries = await readdir(parent, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const prefix = `${name}.new-`;
    if (!e.isDirectory() || !e.name.startsWith(prefix) || !/^[0-9a-f]{8}$/.test(e.name.slice(prefix.length)))
      continue;
    const left = join(parent, e.name);
    const { mtimeMs } = await stat(left).catch(() => ({ mtimeMs: now }));
    // rmdir: only an empty one goes.
    if (now - mtimeMs >= STAGED_LEFT_AFTER_MS) await rmdir(left).catch(() => undefined);
  }
}

/**
 * Grants first, then stops inheriting: were it the other way round, a grant that failed
 * would leave a folder no one may use. The user is named by SID (from whoami), which
 * also names SYSTEM or a service's account, where %USERNAME% does not.
 */
async function restrictToThisUser(dir: string, run: RunProgram): Promise<void> {
  // By full path: Windows looks for a program in the current folder before PATH.
  const system32 = win32.join(process.env.SystemRoot || 'C:\\Windows', 'System32');
  const whoami = await run(win32.join(system32, 'whoami.exe'), ['/user', '/fo', 'csv', '/nh']);
  const sid = /"(S-1-[0-9-]+)"\s*$/.exec(whoami.trim())?.[1];
  if (!sid) throw new Error(`whoami /user named no SID: ${whoami.trim()}`);
  // (OI)(CI)F: full control, inherited by every file and folder made inside.
  const grants = [sid, SYSTEM_SID, ADMINISTRATORS_SID].map((who) => `*${who}:(OI)(CI)F`);
  await run(win32.join(system32, 'icacls.exe'), [dir, '/grant:r', ...grants]);
  await run(win32.join(system32, 'icacls.exe'), [dir, '/inheritance:r']);
}
const SYSTEM_SID = 'S-1-5-18';
const ADMINISTRATORS_SID = 'S-1-5-32-544';

/** Reads a small secret or id file, or makes it (mode 0600) the first time. */
export async function readOrCreate(
  path: string,
  make: () => string,
  sync: (dir: string) => Promise<void> = syncDir,
): Promise<{ value: string; created: boolean }> {
  try {
    return { value: (await readFile(path, 'utf8')).trim(), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const value = make();
  await writeFileAtomic(path, `${value}\n`, 0o600, sync);
  return { value, created: true };
}

/** A byte source that reads into the caller's own buffers, so nothing is copied between. */
export interface ReadsInto {
  /** Fills `buf[offset..offset+length)` as far as it can; 0 at the end. */
  readInto(buf: Buffer, offset: number, length: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * A local file read straight into the chunk buffers (`put`), opened at the first read.
 * Reading it in pieces into one buffer of its own cost a 1 GiB put a second copy of
 * every byte, into the chunk buffer: ~2 % of the client's CPU, as V8's copy into shared
 * memory (perf).
 */
export function fileSource(path: string): ReadsInto {
  let fh: FileHandle | undefined;
  return {
    async readInto(buf, offset, length) {
      fh ??= await open(path, 'r');
      return (await fh.read(buf, offset, length, null)).bytesRead;
    },
    async close() {
      await fh?.close();
      fh = undefined;
    },
  };
}
