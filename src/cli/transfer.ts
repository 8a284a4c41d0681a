import type { Dirent, Stats } from 'node:fs';
import { rmSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { FileSystem, OpenNode } from '../client/file-system.js';
import { checkStoredName, joinPath, namesFolder, notAFolder, splitPath } from '../client/paths.js';
import { createFileWriter, type FileWriter } from '../common/direct-file-writer.js';
import { fileSource, heldOpen, isDiskFull, renameReplacing } from '../common/files.js';
import { watchOutput } from '../common/output-watch.js';
import { mapInParallel } from '../common/parallel.js';
import { randomHexId } from '../crypto/hash.js';
import { SedfsError } from '../protocol/errors.js';
import type { ContentResponse } from '../protocol/namespace-api.js';
import { onInterrupt } from './interrupt.js';
import { progressBar } from './progress.js';
import { commandWord } from './shell-hints.js';

/**
 * Where `put LOCAL [REMOTE]` lands: REMOTE itself, or inside it when it is a folder,
 * unless `asTarget` (`-T`, as GNU cp's): REMOTE itself even then, so a `put -r` into a
 * folder it made can be run again into that folder. A file put to REMOTE written with a
 * trailing `/` goes into that folder, which must exist: it never becomes a file of that
 * name (a second put there would replace the first). A folder (`-r`) may make it.
 */
export async function remoteTarget(
  fs: FileSystem,
  local: string,
  remote: string | undefined,
  cwd: string,
  opts: { asTarget?: boolean; localIsFolder?: boolean } = {},
): Promise<string> {
  const base = basename(local);
  if (remote === undefined) return joinPath([...splitPath(cwd), base]);
  const path = joinPath(splitPath(remote, cwd));
  if (opts.asTarget) return path;
  const existing = await fs.find(remote, cwd);
  if (existing?.entry.kind === 'dir') return joinPath([...splitPath(path), base]);
  if (namesFolder(remote) && !opts.localIsFolder) throw notAFolder(path, existing);
  return path;
}

/** Uploads one local file as the new version of `remote`, with a progress bar on a terminal. */
export async function putFile(
  fs: FileSystem,
  local: string,
  remote: string,
  onWarning?: (w: string) => void,
): Promise<void> {
  const { size } = await stat(local);
  const bar = progressBar(`put ${basename(local)}`, size);
  try {
    await fs.put(fileSource(local), remote, {
      onProgress: bar.update,
      ...(onWarning ? { onWarning } : {}),
    });
  } catch (err) {
    bar.abort();
    throw err;
  }
  bar.done();
}

/** Files up to this size go up in batches (`putMany`); larger ones stream one by one. */
const SMALL_FILE_BYTES = 1024 * 1024;
/**
 * A batch is sent once it holds this many bytes, so memory stays bounded: the batches in
 * flight and the one being read, each held as read and as sealed.
 */
const BATCH_BYTES = 16 * 1024 * 1024;
const BATCH_FILES = 500;
/**
 * Batches placed, sent and committed at once. One waited on main's commit and the file
 * servers' pack writes in turn, the client idle half the time: 2 put 2,000 small files
 * ~6 % faster here (the machine's two cores are then the bound).
 */
const BATCHES_AT_ONCE = 2;
/**
 * Local files looked at and read at once. Each is a few calls to the disk; one after
 * another, 2,000 small files took 0.46-0.69 s to read here, 16 at a time 0.15 s.
 */
const LOCAL_READS = 16;

/**
 * What a listed entry is to `put -r`. Windows lists every reparse point as a link: every
 * OneDrive file and folder (downloaded or not), deduplicated and compressed files too,
 * so a folder under OneDrive uploaded nothing. There an entry listed as a link is asked
 * again with lstat, which calls only real symbolic links and junctions links.
 */
export async function entryKind(
  dir: string,
  entry: Pick<Dirent, 'name' | 'isFile' | 'isDirectory' | 'isSymbolicLink'>,
  lstatOf: (path: string) => Promise<Pick<Stats, 'isFile' | 'isDirectory'>> = lstat,
): Promise<'file' | 'dir' | 'other'> {
  if (entry.isDirectory()) return 'dir';
  if (entry.isFile()) return 'file';
  if (!entry.isSymbolicLink()) return 'other';
  const st = await lstatOf(join(dir, entry.name)).catch(() => undefined);
  return st?.isDirectory() ? 'dir' : st?.isFile() ? 'file' : 'other';
}

/**
 * Uploads a local folder tree under `remote` (made if missing). Small files go up in
 * batches, a few round trips and one commit per batch, two sent at once and the next
 * read meanwhile (at most three in memory); big ones stream with progress. A failure part way
 * says where it stopped and how many files went up before: what went up stays (each
 * file whole, or not at all), with the folders made for the rest.
 */
export async function putTree(
  fs: FileSystem,
  local: string,
  remote: string,
  opts: TreeOptions = {},
): Promise<{ uploaded: number; skipped: number }> {
  const progress: TreeProgress = { files: 0, skipped: 0, at: local };
  try {
    await putTreeInto(fs, local, remote, opts, progress);
    return { uploaded: progress.files, skipped: progress.skipped };
  } catch (err) {
    throw stoppedPartWay(err, local, remote, progress);
  }
}

interface TreeOptions {
  onWarning?: (w: string) => void;
  /**
   * Files already in the target with the same size, not modified here since that
   * version was stored, are left as they are: a `put -r` run again after a failure
   * uploads only the rest, and files changed since. A quick check, as rsync's own (size
   * and time): nothing here can tell a file's content from main's record without reading
   * it back, so a file changed in place at the same size whose modification time says
   * otherwise (set back, or a clock behind main's) is skipped too.
   */
  skipExisting?: boolean;
}

/** How far a `put -r` got: files whose upload was committed, and what it was uploading. */
interface TreeProgress {
  files: number;
  /** files left as they were (`skipExisting`) */
  skipped: number;
  /** the local file, or folder (a batch of its small files), being uploaded */
  at: string;
}

function stoppedPartWay(err: unknown, local: string, remote: string, progress: TreeProgress): Error {
  const why = err instanceof Error ? err.message : String(err);
  const message =
    `put -r stopped at ${progress.at}: ${why}. ${progress.files} file(s) of ${local} were uploaded to ` +
    `${remote} before that (each whole; a batch cut short may have put up some of its own), the ` +
    `rest were not; the folders made are kept. To upload only the rest (files already there with ` +
    `the same size, unchanged since, are left): sedfs put -r --skip-existing -T ${commandWord(local)} ${commandWord(remote)}`;
  if (err instanceof SedfsError) return new SedfsError(err.code, message, undefined, { cause: err });
  // A local failure's code (EACCES, ENOSPC, …) kept for whoever branches on it.
  const code = (err as { code?: unknown } | undefined)?.code;
  return Object.assign(new Error(message, { cause: err }), code === undefined ? {} : { code });
}

async function putTreeInto(
  fs: FileSystem,
  local: string,
  remote: string,
  tree: TreeOptions,
  progress: TreeProgress,
): Promise<void> {
  progress.at = local;
  const { onWarning } = tree;
  await fs.mkdir(remote, { parents: true });
  const opts = onWarning ? { onWarning } : {};
  /**
   * What the target folder holds, by name, listed once: each batch of small files need
   * not list it again (a folder of 2,000 files was listed, and every name opened, four
   * times), and unchanged files are skipped from it.
   */
  const there = new Map((await fs.list(remote)).map((e) => [e.name.normalize('NFC'), e] as const));
  const entries: { name: string; isDirectory: () => boolean; isFile: () => boolean }[] = [];
  for (const e of await readdir(local, { withFileTypes: true })) {
    const kind = await entryKind(local, e);
    if (kind === 'dir') entries.push({ name: e.name, isDirectory: () => true, isFile: () => false });
    else if (kind === 'file') entries.push({ name: e.name, isDirectory: () => false, isFile: () => true });
    // Links are not followed (a link to a parent folder would never end), and sockets,
    // devices and pipes hold no file: each is said, not skipped silently.
    else onWarning?.(`skipped ${join(local, e.name)}: not a regular file or folder (links are not followed)`);
  }
  const stats = await mapInParallel(entries, LOCAL_READS, async (e) =>
    e.isFile() ? await stat(join(local, e.name)) : undefined,
  );
  /** stored already, the same size, and not modified here since that version was stored */
  const unchanged = (name: string, here: { size: number; mtimeMs: number }) => {
    // Stored names are NFC; macOS lists them as written, often NFD (café from HFS+).
    const stored = there.get(name.normalize('NFC'));
    return (
      tree.skipExisting === true &&
      stored?.kind === 'file' &&
      stored.size === here.size &&
      here.mtimeMs <= stored.modifiedAt
    );
  };
  const small: { name: string; size: number }[] = [];
  /**
   * Small files whose stored name (NFC) another entry here has too (café as NFC and as
   * NFD, two names on Linux): each goes up on its own after the batches (the last one
   * listed wins, as a new version), so no batch makes a name that something else here
   * makes too, before or after it.
   */
  const sameName: { name: string; size: number }[] = [];
  const named = new Map<string, number>();
  for (const e of entries) {
    const nfc = e.name.normalize('NFC');
    named.set(nfc, (named.get(nfc) ?? 0) + 1);
  }
  for (const [i, entry] of entries.entries()) {
    const src = join(local, entry.name);
    const dst = joinPath([...splitPath(remote), entry.name]);
    const st = stats[i];
    const size = st?.size ?? 0;
    const shared = (named.get(entry.name.normalize('NFC')) ?? 0) > 1;
    if (entry.isDirectory()) await putTreeInto(fs, src, dst, tree, progress);
    else if (st && unchanged(entry.name, st)) progress.skipped++;
    else if (size > SMALL_FILE_BYTES) {
      progress.at = src;
      await putFile(fs, src, dst, onWarning);
      progress.files++;
    } else if (shared) sameName.push({ name: entry.name, size });
    else small.push({ name: entry.name, size });
  }
  progress.at = local;
  const existing = new Set(there.keys());
  /** batches committing, oldest first */
  const sending: Promise<number>[] = [];
  /** a batch failed: no more are sent */
  let failed = false;
  /** The batches sent end (committed or not) before the command does; the first failure is told. */
  const settle = async () => {
    const rejected = (await Promise.allSettled(sending)).find((r) => r.status === 'rejected');
    if (rejected) throw rejected.reason;
  };
  for (const batch of batchesOf(small, { files: BATCH_FILES, bytes: BATCH_BYTES }, (f) => f.size)) {
    if (failed) break;
    let read: { name: string; data: Buffer }[];
    try {
      read = await mapInParallel(batch, LOCAL_READS, async (f) => ({
        name: f.name,
        data: await readFile(join(local, f.name)),
      }));
      if (sending.length >= BATCHES_AT_ONCE) await sending.shift();
    } catch (err) {
      await settle();
      throw err;
    }
    if (failed) break;
    const committed = fs
      .putMany(remote, read, { ...opts, existing })
      .catch((err) => {
        // A name made here since the folder was listed (by another client): the batch
        // made nothing (one transaction). Sent again, the folder is listed again, and
        // such names go up one by one as new versions.
        if (err instanceof SedfsError && err.code === 'SEDFS_ERR_EXISTS')
          return fs.putMany(remote, read, opts);
        throw err;
      })
      .then((n) => {
        progress.files += n;
        return n;
      });
    // Awaited in turn or at the end; this keeps its failure from counting as unhandled
    // meanwhile, and from starting more batches after it.
    committed.catch(() => {
      failed = true;
    });
    sending.push(committed);
  }
  await settle();
  for (const f of sameName) {
    const src = join(local, f.name);
    progress.at = src;
    await putFile(fs, src, joinPath([...splitPath(remote), f.name]), onWarning);
    progress.files++;
  }
}

/** Files in order, cut into batches of at most `limit.files` files and about `limit.bytes`. */
function batchesOf<T>(
  files: T[],
  limit: { files: number; bytes: number },
  sizeOf: (file: T) => number,
): T[][] {
  const batches: T[][] = [];
  let batch: T[] = [];
  let bytes = 0;
  for (const f of files) {
    batch.push(f);
    bytes += sizeOf(f);
    if (batch.length >= limit.files || bytes >= limit.bytes) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/**
 * Downloads a file to `local` through a temporary file in the same folder, renamed into
 * place only when every chunk has been checked: a failed get never leaves a partial file.
 */
export async function getFile(
  fs: FileSystem,
  remote: string | OpenNode,
  local: string,
  cwd: string,
  opts: {
    /** false for gets running side by side, whose bars would share one line */
    progress?: boolean;
    /** the file's content, when asked for with others' (`FileSystem.contents`) */
    content?: ContentResponse;
  } = {},
): Promise<void> {
  const node = await fs.nodeOf(remote, cwd);
  if (node.entry.kind !== 'file')
    throw new SedfsError('SEDFS_ERR_IS_A_FOLDER', `${node.path} is a folder (use -r)`);
  // Not named after the file: a name of up to 255 bytes is valid, and any longer than
  // 234 became a temporary name longer than file systems take (ENAMETOOLONG).
  const tmp = join(dirname(local), `.${randomHexId(8)}.sedfs-part`);
  // Made before anything is fetched: a file that cannot be made here fails the get now.
  let out: FileWriter;
  try {
    await mkdir(dirname(local), { recursive: true });
    out = createFileWriter(tmp, 0o600, node.entry.size);
  } catch (err) {
    throw isDiskFull(err) ? localDiskFull(err, local) : writeFailure(local, err);
  }
  const forget = onInterrupt(() => rmSync(tmp, { force: true }));
  const bar = progressBar(
    `get ${node.name}`,
    node.entry.size,
    opts.progress !== false && process.stdout.isTTY === true,
  );
  try {
    await whileWritingTo(out, local, async () => {
      await fs.get(node, out, {
        onProgress: bar.update,
        ...(out.bufferFor ? { buffers: out.bufferFor } : {}),
        ...(opts.content ? { content: opts.content } : {}),
      });
      out.end();
      await finished(out);
    });
    await putInPlace(tmp, local);
    bar.done();
  } catch (err) {
    bar.abort();
    // What failed is being thrown; closing a file that is being deleted may fail too.
    out.on('error', () => undefined);
    out.destroy();
    if (!(err instanceof DownloadKept)) await rm(tmp, { force: true });
    throw localDiskFull(err, local);
  } finally {
    forget();
  }
}

/**
 * How long a finished download waits for a program that holds the file it replaces open
 * (Windows): a virus scanner or indexer looking at it lets go in moments.
 */
const REPLACE_PATIENCE_MS = 10_000;

/** A download that could not replace its file, kept whole under its temporary name. */
class DownloadKept extends Error {
  readonly code: string | undefined;
  constructor(local: string, kept: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException).code;
    super(
      `cannot replace ${local}: another program has it open (${code}). The file was downloaded whole and checked, and is kept as ${kept}: close ${basename(local)} there and rename the kept file to it, or get it again`,
      { cause },
    );
    this.code = code;
  }
}

/**
 * Puts a finished download in place of `local`. On Windows a program holding `local`
 * open without letting others replace it (an editor, a viewer, for as long as it has
 * it open) refuses the rename: it is tried again for REPLACE_PATIENCE_MS, then the
 * download is kept under its temporary name (DownloadKept says where), not thrown away.
 */
export async function putInPlace(
  tmp: string,
  local: string,
  platform: NodeJS.Platform = process.platform,
  move?: (from: string, to: string) => Promise<void>,
  patienceMs = REPLACE_PATIENCE_MS,
): Promise<void> {
  try {
    // Not flushed on Windows, as a download is not synced elsewhere: its bytes are the
    // cluster's, and a get cut short by a crash is run again.
    await renameReplacing(tmp, local, {
      platform,
      ...(move ? { move } : {}),
      patienceMs,
      flush: async () => {},
    });
  } catch (err) {
    throw heldOpen(err, platform) ? new DownloadKept(local, tmp, err) : err;
  }
}

/**
 * Runs `work`, which writes to `out`, and fails as soon as `out` fails, with `cannot
 * write WHAT: …` (the error's code kept), watching `out` from the start to the end of
 * `work` (`watchOutput`). If `out` fails first, `work` may still be waiting on the
 * network; it writes nothing more (a failed stream is destroyed).
 */
export async function whileWritingTo<T>(out: Writable, what: string, work: () => Promise<T>): Promise<T> {
  const watch = watchOutput(out, 'the output was closed');
  try {
    // Destroyed already (in the shell, a pipe an earlier command found closed): it takes nothing.
    if (watch.error) throw watch.error;
    return await Promise.race([work(), watch.failed]);
  } catch (err) {
    throw err === watch.error ? writeFailure(what, err) : err;
  } finally {
    watch.stop();
  }
}

/** A local file or stdout that could not be written, said as such, its code (EPIPE…) kept. */
function writeFailure(what: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const failure = new Error(`cannot write ${what}: ${(err as Error).message ?? String(err)}`, { cause: err });
  return code === undefined ? failure : Object.assign(failure, { code });
}

/** A full local disk (ENOSPC, EDQUOT) as one clear error naming the file; anything else as it was. */
function localDiskFull(err: unknown, local: string): unknown {
  if (!isDiskFull(err)) return err;
  return new SedfsError(
    'SEDFS_ERR_NO_SPACE',
    `no space left on the local disk for ${local}: nothing of it was kept`,
    undefined,
    { cause: err },
  );
}

export async function getTree(
  fs: FileSystem,
  remote: string | OpenNode,
  local: string,
  cwd: string,
): Promise<number> {
  const dir = await fs.nodeOf(remote, cwd);
  // Every name in the folder is checked before anything in it is made or written, so a
  // refused one stops the download there rather than halfway through the folder.
  const children = await fs.childrenOf(dir);
  refuseCaseClashes(
    dir.path,
    children.map((c) => c.name),
  );
  const targets = children.map((child) => ({ child, dst: localPath(local, child.name) }));
  await mkdir(local, { recursive: true });
  let files = 0;
  const small: typeof targets = [];
  for (const target of targets) {
    const { child, dst } = target;
    if (child.entry.kind === 'dir') files += await getTree(fs, child, dst, '/');
    else if (child.entry.size < SMALL_FILE_BYTES) small.push(target);
    else {
      await getFile(fs, child, dst, '/');
      files++;
    }
  }
  // Every get ends (its file in place, or its temporary one removed) before the first
  // failure is thrown: none is left running after the command has said it failed.
  let failed: { err: unknown } | undefined;
  const limit = { files: CONTENTS_AT_ONCE, bytes: CONTENTS_BATCH_BYTES };
  for (const batch of batchesOf(small, limit, (t) => t.child.entry.size)) {
    if (failed) break;
    const contents = await fs.contents(batch.map((t) => t.child));
    const gets = batch.map((t, k) => ({ ...t, content: contents[k] }));
    await mapInParallel(gets, SMALL_GETS, async ({ child, dst, content }) => {
      if (failed) return;
      await getSmall(fs, child, dst, content).catch((err: unknown) => {
        failed ??= { err };
      });
    });
  }
  if (failed) throw failed.err;
  return files + small.length;
}

/**
 * One small file of `get -r`, with its content from its batch's request: fetched alone
 * when the batch had no room for it, and again alone when what was asked for in advance
 * no longer reads (its tickets expired, or a new version freed its chunks meanwhile).
 */
async function getSmall(
  fs: FileSystem,
  child: OpenNode,
  dst: string,
  content: ContentResponse | SedfsError | undefined,
): Promise<void> {
  // A file too big for the batch, or under keys main was installing when the batch was
  // asked for, is fetched alone (which waits for the install).
  if (
    content instanceof SedfsError &&
    content.code !== 'SEDFS_ERR_BATCH_FULL' &&
    content.code !== 'SEDFS_ERR_KEYS_INSTALLING'
  )
    throw content;
  if (content === undefined || content instanceof SedfsError)
    return getFile(fs, child, dst, '/', { progress: false });
  try {
    await getFile(fs, child, dst, '/', { progress: false, content });
  } catch (err) {
    if (!(err instanceof SedfsError) || err.code !== 'SEDFS_ERR_ALL_REPLICAS_FAILED') throw err;
    await getFile(fs, child, dst, '/', { progress: false });
  }
}

/**
 * Small files fetched at once by `get -r`. Each is a chunk request to a file server and a
 * few file-system calls, mostly waiting: one after another (each with its own request to
 * main, too), 2,000 files of 4 KiB took 2.9–3.6 s.
 */
const SMALL_GETS = 8;
/**
 * Small files whose contents (versions, manifests, read tickets) `get -r` asks main for
 * in one request, instead of one request per file; and about this many bytes of them,
 * so a batch is fetched well within its tickets' lifetime (5 minutes by default). Each
 * batch is asked for when its turn comes.
 */
const CONTENTS_AT_ONCE = 64;
const CONTENTS_BATCH_BYTES = 16 * 1024 * 1024;

/**
 * Whether a local path the user typed names a folder to go into (`dir/`): on Windows a
 * backslash ends it as well (`D:\dir\`), where only `/` was looked at, so `get -r /x
 * D:\dir\` wrote into D:\dir itself rather than D:\dir\x.
 */
export function endsWithSeparator(path: string, platform = process.platform): boolean {
  return path.endsWith('/') || (platform === 'win32' && path.endsWith('\\'));
}

/**
 * Where a remote entry named `name` lands inside local folder `dir`. Names come from
 * folders others may write to: one that could lead out of `dir`, or that this system
 * cannot store, is refused (SEDFS_ERR_BAD_NAME), never written elsewhere.
 */
export function localPath(dir: string, name: string): string {
  return join(dir, checkStoredName(name, process.platform));
}

/**
 * A name as a case-insensitive file system compares it: each character by its upper
 * case, where that is one character (NTFS's table maps one to one). Lower case alone
 * kept apart pairs NTFS takes as one name (σ and ς, ı and i, ſ and s, µ and μ); a
 * mapping that grows (ß to SS) is no folding there.
 */
function caseFolded(name: string): string {
  let out = '';
  for (const c of name) {
    const upper = c.toUpperCase();
    out += [...upper].length === 1 ? upper : c;
  }
  return out;
}

/**
 * Names that differ only in letter case are two files remotely but one on Windows and
 * (by default) macOS, where the second would silently replace the first: such a folder
 * is refused before anything in it is written.
 */
export function refuseCaseClashes(folder: string, names: string[], platform = process.platform): void {
  if (platform !== 'win32' && platform !== 'darwin') return;
  const seen = new Map<string, string>();
  for (const name of names) {
    const key = caseFolded(name.normalize('NFC'));
    const other = seen.get(key);
    if (other !== undefined)
      throw new SedfsError(
        'SEDFS_ERR_BAD_NAME',
        `${JSON.stringify(other)} and ${JSON.stringify(name)} in ${folder} differ only in letter case, which file names here do not: get them one at a time`,
      );
    seen.set(key, name);
  }
}

/**
 * Reads a whole (small) file into memory, with the version read: for `write --append`
 * and `edit`, which write back only over that version.
 */
export async function readSmall(
  fs: FileSystem,
  remote: string | OpenNode,
  cwd: string,
  limit = 64 * 1024 * 1024,
): Promise<{ data: Buffer; versionId: string }> {
  const node = await fs.nodeOf(remote, cwd);
  if (node.entry.size > limit)
    throw new SedfsError('SEDFS_ERR_BAD_REQUEST', `${node.path} is too large for this`);
  // Asked for here, so the version is the one whose bytes are read, not the one listed
  // before (another may have landed in between).
  const content = await fs.client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
  const parts: Buffer[] = [];
  await fs.get(
    node,
    new Writable({
      write(c: Buffer, _e, cb) {
        parts.push(Buffer.from(c));
        cb();
      },
    }),
    { content },
  );
  return { data: Buffer.concat(parts), versionId: content.version.id };
}
