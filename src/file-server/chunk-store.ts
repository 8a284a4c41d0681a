import { type Dirent, existsSync, type StatsFs } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, statfs, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BufferPool } from '../common/buffer-pool.js';
import { DIRECT_ALIGN, DirectIo } from '../common/direct-io.js';
import {
  heldOpen,
  isDiskFull,
  isGone,
  mkdirDurable,
  removeFreeingName,
  renameReplacing,
  syncDir,
  writeFileAtomic,
} from '../common/files.js';
import { inParallel } from '../common/parallel.js';
import { type Hasher, randomHexId, sha256Hasher } from '../crypto/hash.js';
import { assertChunkId, isChunkId } from '../protocol/chunk-id.js';
import { SedfsError } from '../protocol/errors.js';
import type { ServerStatsBody } from '../protocol/main-api.js';
import { ChangeLog } from './change-log.js';
import { ALWAYS_HASH_BELOW, ChunkPacks, PackWrite } from './chunk-packs.js';

/**
 * Chunks on local disk at `chunks/<2 hex>/<64 hex id>`, named by the SHA-256 of their
 * bytes. A write goes to `tmp/`, is hashed as it arrives, fsynced, renamed
 * into place and its directory fsynced: a chunk file that exists is whole and correct,
 * and whatever a crash leaves in `tmp/` is removed at the next start. Small chunks sent
 * in one batch are stored together instead, in one pack file (see chunk-packs.ts).
 */
export interface ChunkStoreEvents {
  /** chunks moved up from the old two-level layout at init */
  onMovedUp?: (chunks: number) => void;
  onBadPack?: (name: string, why: string) => void;
  onCompactFailed?: (pack: string, why: string) => void;
  /** a chunk or batch was refused, or failed, for want of space (one call per refusal) */
  onNoSpace?: (info: { bytes: number; freeBytes: number; reserveBytes: number }) => void;
  /**
   * `statfs` failed on the data folder (some network shares, some Windows setups): free
   * space is unknown until it works again. Told once each time it stops working.
   */
  onFreeSpaceUnknown?: (err: unknown) => void;
}

export interface ChunkStoreOptions {
  /**
   * Space new chunks must leave free on the data folder's file system (its log, temporary
   * files, compactions need room): a chunk that would leave less is refused, and the free
   * space reported to main is what is left above it.
   */
  reserveBytes?: number;
  /** How the data folder's free space is asked for (tests make it fail) */
  statfs?: (path: string) => Promise<StatsFs>;
}

/**
 * The free space reported to main while `statfs` fails and never worked since start:
 * placement needs a figure, and this one places on the server as on one with room,
 * without drawing most copies from servers that report theirs.
 */
export const UNKNOWN_FREE_BYTES = 64 * 1024 ** 3;

export class ChunkStore {
  readonly chunksDir: string;
  readonly tmpDir: string;
  /** chunks that failed a re-hash, and packs that could not be read, kept for inspection */
  private readonly quarantineDir: string;
  private usedBytes = 0;
  private chunkCount = 0;
  private pool: BufferPool;
  private readPool = new BufferPool(READ_BUFFER_BYTES, 16);
  /** Set when chunk files are written with O_DIRECT (see direct-io.ts). */
  private direct: DirectIo | undefined;
  /** What was stored, removed or quarantined here since main was last told. */
  readonly changes = new ChangeLog();
  private readonly packs: ChunkPacks;
  private sendsOpen = 0;
  /** checks of stored chunks running now, by chunk id */
  private readonly verifying = new Map<string, Promise<boolean>>();
  /** the placement of each chunk being put in place, so that writes of one chunk take turns (placeWrite) */
  private readonly placing = new Map<string, Promise<void>>();
  /** what `statfs` said last time it worked, and the bytes stored here then */
  private lastDisk: { totalBytes: number; freeBytes: number; usedBytes: number } | undefined;
  /** `statfs` failed the last time it was asked */
  private freeSpaceUnknown = false;
  /** with free space unknown, a write hit a full disk and no chunk was removed since */
  private fullWhileUnknown = false;

  /**
   * `events.onBadPack` hears of a pack that cannot be read at init (it is moved to
   * `quarantine/` and its chunks are missing here); `events.onCompactFailed` of a pack
   * that could not be compacted (it stays as it was).
   */
  constructor(
    readonly root: string,
    readonly maxChunkBytes: number,
    private readonly events: ChunkStoreEvents = {},
    /** how a directory is made durable (tests watch it; a server's carries on where the file system cannot) */
    private readonly syncDirectory: (dir: string) => Promise<void> = syncDir,
    private readonly opts: ChunkStoreOptions = {},
  ) {
    this.chunksDir = join(root, 'chunks');
    this.tmpDir = join(root, 'tmp');
    this.quarantineDir = join(root, 'quarantine');
    this.pool = new BufferPool(Math.min(maxChunkBytes, WRITE_BUFFER_BYTES), 16);
    this.packs = new ChunkPacks(
      join(root, 'packs'),
      this.tmpDir,
      (id) => existsSync(this.pathOf(id)),
      events.onCompactFailed,
      syncDirectory,
    );
  }

  /** Clears unfinished writes and counts what is stored (packs that cannot be read go to quarantine). */
  async init(): Promise<void> {
    // Tried again on Windows while a scanner or an indexer still holds a file in it (EBUSY, EPERM).
    await rm(this.tmpDir, { recursive: true, force: true, maxRetries: 5 });
    await mkdirDurable(this.tmpDir, this.syncDirectory);
    await mkdirDurable(this.chunksDir, this.syncDirectory);
    await this.makeShards();
    // Once: a data folder whose chunks/ has the mark was made, or moved up, in this layout.
    const mark = join(this.chunksDir, LAYOUT_MARK);
    if (!existsSync(mark)) {
      await this.moveUpFromOldLayout();
      await writeFileAtomic(mark, 'one level: chunks/<id[0:2]>/<id>\n', 0o644, this.syncDirectory);
    }
    this.direct = DirectIo.open(this.tmpDir);
    if (this.direct) {
      // Whole aligned blocks: every flush but a chunk's last must end on the alignment.
      const size = Math.ceil(this.pool.size / DIRECT_ALIGN) * DIRECT_ALIGN;
      this.pool = new BufferPool(size, 16, (n) => (this.direct as DirectIo).alignedBuffer(n));
      this.readPool = new BufferPool(READ_BUFFER_BYTES, 16, (n) =>
        (this.direct as DirectIo).alignedBuffer(n),
      );
    }
    const packed = await this.packs.load(async (name, why) => {
      this.events.onBadPack?.(name, why);
      await mkdirDurable(this.quarantineDir, this.syncDirectory);
      await rename(join(this.packs.dir, name), join(this.quarantineDir, `${name}.${Date.now()}`));
    });
    this.usedBytes += packed.bytes;
    this.chunkCount += packed.chunks;
    // Sizes are looked up 16 shards at a time (one stat after another, 30,000 chunk files
    // took a second), and counted in shard order.
    for (let at = 0; at < SHARDS.length; at += FS_CALLS_AT_ONCE) {
      const shards = SHARDS.slice(at, at + FS_CALLS_AT_ONCE);
      for (const files of await Promise.all(shards.map((a) => this.sizesIn(a)))) {
        for (const { id, size } of files) {
          // A chunk is live in one place only: a chunk file retires a packed copy (one
          // written after the pack, whose removal from it a crash lost).
          const packedSize = this.packs.has(id) ? await this.packs.remove(id) : undefined;
          if (packedSize !== undefined) {
            this.usedBytes -= packedSize;
            this.chunkCount -= 1;
          }
          this.usedBytes += size;
          this.chunkCount += 1;
        }
      }
    }
  }

  /** Resolves once the pack compactions asked for so far are done (see chunk-packs.ts). */
  packsCompacted(): Promise<void> {
    return this.packs.compacted();
  }

  pathOf(id: string): string {
    assertChunkId(id);
    return join(this.chunksDir, id.slice(0, 2), id);
  }

  async has(id: string): Promise<boolean> {
    if (this.packs.has(assertChunkId(id))) return true;
    try {
      await stat(this.pathOf(id));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * `freeBytes`: what new chunks may still take, the file system's free space less the
   * reserve. While `statfs` fails: the last figures it gave less what was stored since,
   * UNKNOWN_FREE_BYTES if it never worked, and none once a write found the disk full
   * (until a chunk is removed).
   */
  async stats(): Promise<ServerStatsBody> {
    const disk = await this.diskSpace();
    const counts = { usedBytes: this.usedBytes, chunkCount: this.chunkCount };
    if (disk)
      return { totalBytes: disk.total, freeBytes: Math.max(0, disk.free - this.reserveBytes), ...counts };
    const last = this.lastDisk;
    const free = last ? Math.max(0, last.freeBytes - (this.usedBytes - last.usedBytes)) : UNKNOWN_FREE_BYTES;
    return {
      totalBytes: last?.totalBytes ?? this.usedBytes + free,
      freeBytes: this.fullWhileUnknown ? 0 : free,
      ...counts,
      // `sedfs servers` says so, rather than show the estimate as a measure.
      freeUnknown: true,
    };
  }

  /**
   * The data folder's file system's size and free bytes; undefined when `statfs` fails
   * there, told to `onFreeSpaceUnknown` once until it works again.
   */
  private async diskSpace(): Promise<{ total: number; free: number } | undefined> {
    try {
      const fs = await (this.opts.statfs ?? statfs)(this.root);
      const disk = { total: fs.blocks * fs.bsize, free: fs.bavail * fs.bsize };
      this.freeSpaceUnknown = false;
      this.fullWhileUnknown = false;
      this.lastDisk = {
        totalBytes: disk.total,
        freeBytes: Math.max(0, disk.free - this.reserveBytes),
        usedBytes: this.usedBytes,
      };
      return disk;
    } catch (err) {
      if (!this.freeSpaceUnknown) this.events.onFreeSpaceUnknown?.(err);
      this.freeSpaceUnknown = true;
      return undefined;
    }
  }

  get reserveBytes(): number {
    return this.opts.reserveBytes ?? 0;
  }

  /** Whether large chunks are written with O_DIRECT here (not on tmpfs, nor off Linux). */
  get writesDirect(): boolean {
    return this.direct !== undefined;
  }

  /**
   * Refuses (SEDFS_ERR_NO_SPACE) `bytes` more that would leave less than the reserve free,
   * before anything is received: one statfs call, far cheaper than a chunk's write. With
   * free space unknown (statfs fails) nothing is refused here: the write's own ENOSPC
   * is the limit, rather than every write failing.
   */
  async ensureRoom(bytes: number): Promise<void> {
    const disk = await this.diskSpace();
    if (!disk || disk.free - bytes >= this.reserveBytes) return;
    throw this.noSpace(bytes, disk.free);
  }

  /**
   * `ensureRoom` for those of `chunks` this server does not hold. One it holds takes no
   * more room when it comes again (a put retried, a repair copy ordered from a map that
   * did not know of it): its new copy replaces the old one or is dropped, and the
   * temporary file meanwhile is what the reserve is for. Refused, a put of it would fail
   * on a server that has it, and a repair copy would be ordered there again and again.
   */
  async ensureRoomFor(chunks: { id: string; size: number }[]): Promise<void> {
    const disk = await this.diskSpace();
    const all = chunks.reduce((sum, c) => sum + c.size, 0);
    if (!disk || disk.free - all >= this.reserveBytes) return;
    // Looked for only when room is short: a batch of new small chunks would otherwise
    // cost a file system call each (0.3-0.8 ms here), for nothing.
    let bytes = 0;
    for (const c of chunks) if (!(await this.has(c.id))) bytes += c.size;
    if (bytes > 0 && disk.free - bytes < this.reserveBytes) throw this.noSpace(bytes, disk.free);
  }

  /**
   * What a failed write throws: a full disk (ENOSPC, EDQUOT) as SEDFS_ERR_NO_SPACE, told
   * to `onNoSpace`; anything else as it was.
   */
  writeFailed(err: unknown, bytes: number): unknown {
    if (!isDiskFull(err)) return err;
    // Main hears of it as no room left, as it would from statfs.
    if (this.freeSpaceUnknown) this.fullWhileUnknown = true;
    return this.noSpace(bytes, undefined, err);
  }

  private noSpace(bytes: number, free: number | undefined, cause?: unknown): SedfsError {
    this.events.onNoSpace?.({ bytes, freeBytes: free ?? 0, reserveBytes: this.reserveBytes });
    return new SedfsError(
      'SEDFS_ERR_NO_SPACE',
      `this file server is out of space (${bytes} bytes refused; ${free === undefined ? 'the disk is full' : `${Math.max(0, free)} bytes free, ${this.reserveBytes} kept in reserve`})`,
      undefined,
      cause === undefined ? undefined : { cause },
    );
  }

  /**
   * Starts writing a chunk of `size` bytes; feed it with `append`, then `commit` or
   * `abort`. With `verifiedUpstream` (the bytes come over mutual TLS from the server
   * before this one in the chain, which checked the hash before sending the last byte)
   * a large chunk is not hashed again here: one hash per chain, not one per replica.
   * Unless this server holds the chunk already: unhashed bytes never replace a copy
   * held here, so they are hashed, and (see `commit`) a copy stored meanwhile is kept.
   */
  async beginWrite(
    id: string,
    size: number,
    opts: { verifiedUpstream?: boolean; whole?: Buffer } = {},
  ): Promise<ChunkWrite> {
    const held = await this.has(id);
    const trustUpstream = opts.verifiedUpstream === true && !held;
    const final = this.pathOf(id);
    // One held here already takes no more room (see ensureRoomFor).
    if (!held) await this.ensureRoom(size);
    const tmp = join(this.tmpDir, `${id}.${randomHexId(6)}.part`);
    // Small chunks go through the page cache: one write, no padding to cut back.
    const direct = this.direct !== undefined && size >= DIRECT_FROM_BYTES;
    const fh = await open(tmp, direct ? (this.direct as DirectIo).createFlags : 'wx', 0o644).catch((err) => {
      // No inode left is a full disk too; nothing was made.
      throw this.writeFailed(err, size);
    });
    return new ChunkWrite(this, id, size, tmp, final, fh, this.pool, direct, trustUpstream, opts.whole);
  }

  /**
   * A buffer to receive one whole chunk of up to `size` bytes into, which `storeWhole`
   * writes to the disk as it is: with O_DIRECT, aligned memory with room for the padding
   * of the last block. Copying a received copy into a write buffer first cost a repair
   * target 0.17 s of its thread per GiB, the thread that bounds repair.
   */
  wholeChunkBuffer(size: number): Buffer {
    if (!this.direct) return Buffer.allocUnsafe(size);
    return this.direct.alignedBuffer(Math.ceil(size / DIRECT_ALIGN) * DIRECT_ALIGN).subarray(0, size);
  }

  /**
   * Stores a chunk held whole in memory (hashed, made durable and visible, as `commit`
   * does), written from `chunk` itself where it lies at the start of a `wholeChunkBuffer`;
   * copied into write buffers otherwise. The bytes past the chunk in that buffer are
   * overwritten (the padding).
   */
  async storeWhole(id: string, chunk: Buffer): Promise<void> {
    const padded = Math.ceil(chunk.length / DIRECT_ALIGN) * DIRECT_ALIGN;
    const inPlace = !this.direct || this.direct.startsAligned(chunk, padded);
    const whole = inPlace
      ? Buffer.from(chunk.buffer, chunk.byteOffset, this.direct ? padded : chunk.length)
      : undefined;
    const write = await this.beginWrite(id, chunk.length, whole ? { whole } : {});
    try {
      if (!whole) await write.append(chunk);
      await write.commit();
    } catch (err) {
      await write.abort();
      throw err;
    }
  }

  /**
   * Starts receiving a batch of small chunks (in body order), stored together as one
   * pack once all have arrived and been checked.
   */
  beginPack(ids: string[], sizes: number[], opts: { verifiedUpstream?: boolean } = {}): PackWrite {
    for (const id of ids) assertChunkId(id);
    return new PackWrite(ids, sizes, opts.verifiedUpstream === true, async (chunks) => {
      const counted = (written: { id: string; size: number }[]) => {
        for (const { id, size } of written) {
          this.usedBytes += size;
          this.chunkCount += 1;
          this.changes.noteAdded(id);
        }
      };
      await this.packs.write(chunks, counted).catch((err) => {
        throw this.writeFailed(
          err,
          sizes.reduce((a, b) => a + b, 0),
        );
      });
    });
  }

  /**
   * Sends a stored chunk to `write` in blocks read into two reused buffers (O_DIRECT
   * where writes are: no page cache to fill), reading the next block while the last is
   * being sent. `write` resolves once the bytes are handed off, so a buffer is never
   * refilled while still in use, and must settle even if its reader stalls: until then
   * the file and both buffers stay taken. 404 if this server does not hold the chunk;
   * `ready` is told the size before the first byte. A packed chunk is read through the
   * page cache (its offset in the pack is not aligned), and only its own bytes.
   */
  async send(
    id: string,
    ready: (size: number) => void,
    write: (piece: Buffer) => Promise<void>,
  ): Promise<void> {
    let packed = this.packs.locate(assertChunkId(id));
    const openAt = (at: typeof packed) =>
      open(at?.path ?? this.pathOf(id), this.direct && !at ? this.direct.readFlags : 'r');
    const fh = await openAt(packed)
      .catch((err: NodeJS.ErrnoException) => {
        // Its pack was compacted between finding it and opening it: it is in the new one.
        const moved = this.packs.locate(id);
        if (!isGone(err) || !moved || moved.path === packed?.path) throw err;
        packed = moved;
        return openAt(moved);
      })
      .catch((err: NodeJS.ErrnoException) => {
        // ENOENT only: on Windows EPERM may also be a folder's wrong permissions, which
        // must show as the error it is, not as a missing chunk.
        if (err.code === 'ENOENT') throw new SedfsError('SEDFS_ERR_CHUNK_NOT_FOUND');
        throw err;
      });
    const bufs = [this.readPool.take(), this.readPool.take()];
    this.sendsOpen += 1;
    let sending: Promise<void> = Promise.resolve();
    try {
      const base = packed?.offset ?? 0;
      const size = packed?.size ?? (await fh.stat()).size;
      ready(size);
      for (let pos = 0, k = 0; pos < size; k++) {
        const buf = bufs[k % 2] as Buffer;
        // A chunk file is read in whole buffers (O_DIRECT needs aligned lengths).
        const length = packed ? Math.min(buf.length, size - pos) : buf.length;
        const { bytesRead } = await fh.read(buf, 0, length, base + pos);
        if (bytesRead === 0) throw new Error(`chunk ${id} ended early`);
        // The other buffer's send must finish before the next read refills it.
        await sending;
        sending = write(buf.subarray(0, Math.min(bytesRead, size - pos)));
        // A failure (the reader hung up) is taken at the next `await sending`; until then,
        // while the next block is read, it must not count as unhandled: that ends the process.
        sending.catch(ignore);
        pos += bytesRead;
      }
      await sending;
    } catch (err) {
      // A read failed while the other buffer's piece is still being sent: that buffer
      // goes back to the pool, to be refilled by another send, only once its send has
      // settled (a sink that can stall must settle on its own: see get-chunk.ts).
      await sending.catch(ignore);
      throw err;
    } finally {
      for (const b of bufs) this.readPool.give(b);
      try {
        await fh.close();
      } finally {
        this.sendsOpen -= 1;
      }
    }
  }

  /** Chunks being sent now, each holding an open file and two read buffers. */
  get sending(): number {
    return this.sendsOpen;
  }

  /** Removes a chunk (from its pack, or its file); 404 if this server does not hold it. */
  async remove(id: string): Promise<void> {
    const path = this.pathOf(id);
    const packedSize = await this.packs.remove(id);
    const st = await stat(path).catch(() => undefined);
    // Its name freed at once on Windows too: the chunk may be stored here again soon.
    if (st) await removeFreeingName(path, this.tmpDir);
    const size = st?.size ?? packedSize;
    if (size === undefined) throw new SedfsError('SEDFS_ERR_CHUNK_NOT_FOUND');
    this.usedBytes -= size;
    this.chunkCount -= 1;
    this.changes.noteRemoved(id);
    // Room again, perhaps: free space unknown is reported as it was before the disk filled.
    this.fullWhileUnknown = false;
  }

  /**
   * Re-hashes a stored chunk. A chunk that no longer matches its id is moved to
   * `quarantine/` (kept for inspection, never served again) and false is returned.
   * `onBytes` lets a caller pace the reading (the scrubber's rate limit).
   */
  async verify(id: string, onBytes?: (n: number) => Promise<void>): Promise<boolean> {
    // One check per chunk at a time: a check asked for while one runs (the scrubber, a
    // reader's report, a failed repair copy) gets its answer, and a bad chunk is
    // quarantined and counted out once.
    const running = this.verifying.get(id);
    if (running) return running;
    const checking = this.verifyOnce(id, onBytes).finally(() => this.verifying.delete(id));
    this.verifying.set(id, checking);
    return checking;
  }

  private async verifyOnce(id: string, onBytes?: (n: number) => Promise<void>): Promise<boolean> {
    const hasher = sha256Hasher();
    const kept: Buffer[] = [];
    let size = 0;
    const packed = this.packs.locate(assertChunkId(id));
    // send answers CHUNK_NOT_FOUND for a chunk this server does not hold.
    await this.send(
      id,
      () => undefined,
      async (piece) => {
        hasher.update(piece);
        // A packed chunk's bytes are copied out if bad; a chunk file is moved whole.
        if (packed) kept.push(Buffer.from(piece));
        size += piece.length;
        await onBytes?.(piece.length);
      },
    );
    if (hasher.digestHex() === id) return true;
    // Kept in quarantine/ for inspection where it can be. Where it cannot (a full disk, no
    // quarantine folder, a rename refused) the corrupt chunk leaves the store all the same:
    // it is worth nothing, and left in place it would still be listed, served and counted.
    const to = await mkdirDurable(this.quarantineDir, this.syncDirectory).then(
      () => join(this.quarantineDir, `${id}.${Date.now()}`),
      () => undefined,
    );
    if (packed) {
      if (to) await writeFile(to, Buffer.concat(kept)).catch(() => rm(to, { force: true }));
      // Gone from the packs meanwhile, and counted out there: deleted, or written again
      // as a chunk file of its own (a good copy, then).
      if ((await this.packs.remove(id)) === undefined) return existsSync(this.pathOf(id));
    } else {
      const moved =
        to !== undefined &&
        (await rename(this.pathOf(id), to).then(
          () => true,
          () => false,
        ));
      if (!moved) await rm(this.pathOf(id), { force: true });
    }
    this.usedBytes -= size;
    this.chunkCount -= 1;
    this.changes.noteRemoved(id);
    return false;
  }

  /**
   * Every stored chunk id in ascending order (main merges it with its own sorted list):
   * chunk files streamed from disk, merged with the packed ids.
   */
  async *inventory(): AsyncGenerator<string> {
    const packed = this.packs.sortedIds();
    let next = packed.next();
    for await (const id of this.walk()) {
      for (; !next.done && next.value < id; next = packed.next()) yield next.value;
      if (!next.done && next.value === id) next = packed.next();
      yield id;
    }
    for (; !next.done; next = packed.next()) yield next.value;
  }

  /**
   * @internal called by ChunkWrite once its file is durable in tmp/: puts it in place,
   * one write of a chunk at a time. Two writes of one chunk at once (a client's retry, a
   * repair copy beside a client's) each found it absent and counted it, twice.
   */
  async placeWrite(id: string, tmp: string, final: string, size: number, hashed: boolean): Promise<void> {
    const before = this.placing.get(id) ?? Promise.resolve();
    const mine = before.then(async () => {
      const existed = await this.has(id);
      // Bytes taken unhashed from upstream never replace a copy stored here meanwhile.
      if (existed && !hashed) await rm(tmp, { force: true });
      else await this.placeFile(tmp, final, size, existed);
    });
    const settled = mine.catch(() => undefined);
    this.placing.set(id, settled);
    try {
      await mine;
    } finally {
      if (this.placing.get(id) === settled) this.placing.delete(id);
    }
  }

  private async placeFile(tmp: string, final: string, size: number, existed: boolean): Promise<void> {
    try {
      await renameReplacing(tmp, final);
    } catch (err) {
      // On Windows a file being read (a download, a repair copy, the scrubber) cannot be
      // replaced, for as long as its reader takes. The copy here has the same id, so the
      // same bytes unless it rotted, which the scrubber and readers find and report.
      if (!existed || !heldOpen(err)) throw err;
      await rm(tmp, { force: true });
      return;
    }
    // Counted and told to main as soon as it is in place: if the fsync below fails, the
    // write fails but the file stays, and went uncounted and unreported until a restart.
    if (!existed) {
      this.usedBytes += size;
      this.chunkCount += 1;
    }
    this.changes.noteAdded(basename(final));
    await this.syncDirectory(dirname(final));
    // A chunk is live in one place only: a packed copy of it is dead now, once the chunk
    // file is durably where it belongs. One packed after this file was found absent was
    // counted too, and is counted out again.
    const packed = await this.packs.remove(basename(final));
    if (packed !== undefined && !existed) {
      this.usedBytes -= packed;
      this.chunkCount -= 1;
    }
  }

  /**
   * Makes the 256 shard directories, once for the life of the data folder, and fsyncs
   * chunks/ if any was new. Made as chunks came, most of a young server's chunks paid a
   * mkdir and a directory fsync of their own (with two levels of 256, as before, even a
   * server holding a terabyte was still making directories).
   */
  private async makeShards(): Promise<void> {
    const have = new Set(await readdirOrEmpty(this.chunksDir));
    const missing = SHARDS.filter((shard) => !have.has(shard));
    // Side by side: one after another they took most of a first start's 0.1 s.
    await inParallel(missing, FS_CALLS_AT_ONCE, async (shard) => {
      await mkdir(join(this.chunksDir, shard), { recursive: true });
    });
    if (missing.length > 0) await this.syncDirectory(this.chunksDir);
  }

  /**
   * Chunks used to sit one level deeper (`chunks/aa/bb/<id>`); they are moved up at
   * start. A rename is atomic, so a crash midway leaves each chunk in one of the two
   * places, and the next start goes on. An old folder is removed once empty; one with
   * anything else in it (never ours to report) is left as it is.
   */
  private async moveUpFromOldLayout(): Promise<void> {
    let moved = 0;
    await inParallel(SHARDS, FS_CALLS_AT_ONCE, async (a) => {
      const shard = join(this.chunksDir, a);
      const old = (await readdirOrEmpty(shard)).filter((name) => SHARD_NAME.test(name));
      for (const b of old) {
        const from = join(shard, b);
        for (const name of await readdirOrEmpty(from)) {
          if (!isChunkId(name) || name.slice(0, 4) !== a + b) continue;
          await renameReplacing(join(from, name), join(shard, name));
          moved++;
        }
        await this.syncDirectory(shard);
        await rmdir(from).catch(ignore);
      }
    });
    if (moved > 0) this.events.onMovedUp?.(moved);
  }

  /**
   * The chunk files, in id order, from one listing per shard: a listing says which
   * entries are files, so no chunk costs a call of its own.
   */
  private async *walk(): AsyncGenerator<string> {
    for (const a of SHARDS) yield* await this.chunkFilesIn(a);
  }

  /** The chunk files of one shard, sorted. Anything that is not a well-formed chunk in its right place is not ours to report. */
  private async chunkFilesIn(shard: string): Promise<string[]> {
    return (await direntsOrEmpty(join(this.chunksDir, shard)))
      .filter((e) => e.isFile() && isChunkId(e.name) && e.name.slice(0, 2) === shard)
      .map((e) => e.name)
      .sort();
  }

  /** The chunk files of one shard with their sizes (one that vanished meanwhile is left out). */
  private async sizesIn(shard: string): Promise<{ id: string; size: number }[]> {
    const out: { id: string; size: number }[] = [];
    for (const id of await this.chunkFilesIn(shard)) {
      const st = await stat(join(this.chunksDir, shard, id)).catch(() => undefined);
      if (st) out.push({ id, size: st.size });
    }
    return out;
  }
}

const ignore = () => undefined;

/** The shard directories under chunks/, by a chunk id's first two hex digits. */
const SHARDS = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const SHARD_NAME = /^[0-9a-f]{2}$/;
/** In chunks/ once every chunk file is in its shard folder (listing them all at every start to look for old folders cost ~2 s a million chunks). */
const LAYOUT_MARK = 'layout';
/** File system calls in flight at once at start: libuv's pool has 4 threads, the disk a queue. */
const FS_CALLS_AT_ONCE = 16;

/**
 * A folder's entries, none if it does not exist. Any other failure (EIO, too many open
 * files) is thrown: taken for "empty", it hid a shard's chunks from the count and the
 * inventory (main would drop them all as missing), or let the layout mark be written
 * over old folders never looked into.
 */
async function direntsOrEmpty(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  return (await direntsOrEmpty(dir)).map((e) => e.name).sort();
}

/**
 * Incoming pieces are copied into one reusable buffer and written in large blocks:
 * each async fs call costs far more than the copy, and fresh memory is slow to touch.
 * 1 MiB, not a whole 4 MiB chunk: a server holds one per chunk it is receiving, and in
 * a 1 GiB put at R=3 the smaller buffers cut each server's peak RSS by ~10 MiB with no
 * loss of speed (163–164 against 130–148 MiB/s in the same probe; the machine is noisy).
 */
const WRITE_BUFFER_BYTES = 1024 * 1024;
/**
 * Chunks at least this big are written with O_DIRECT where available; smaller ones
 * (small files) are one buffered write each, which saves the padding and the truncate.
 */
const DIRECT_FROM_BYTES = 256 * 1024;
/** Reads go in blocks of this size (a multiple of the direct-I/O alignment). */
const READ_BUFFER_BYTES = 2 * 1024 * 1024;

export class ChunkWrite {
  /** undefined when the bytes come from an upstream server that has checked them */
  private readonly hasher: Hasher | undefined;
  private buf: Buffer;
  private readonly pooled: boolean;
  private fill = 0;
  /** how much of the buffer the hasher has seen */
  private hashed = 0;
  private written = 0;
  private received = 0;
  private verified = false;
  private done = false;
  /**
   * The last flush, and whether the file system is writing from the buffer for it now:
   * if so, the buffer goes back to the pool only once that flush has settled.
   */
  private flushing: Promise<void> | undefined;
  private writing = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly store: ChunkStore,
    readonly id: string,
    readonly size: number,
    private readonly tmp: string,
    private readonly final: string,
    private readonly fh: import('node:fs/promises').FileHandle,
    private readonly pool: BufferPool,
    /** the file is open with O_DIRECT: whole aligned blocks only, then truncate */
    private readonly direct = false,
    verifiedUpstream = false,
    /**
     * The whole chunk already in memory (see ChunkStore.storeWhole), written from where it
     * is: as long as the chunk or, with O_DIRECT, padded to the alignment.
     */
    whole?: Buffer,
  ) {
    // A small chunk gets a buffer of its own size: a batch holds dozens at once, and a
    // pooled 4 MiB buffer each would be most of a server's memory.
    this.pooled = whole === undefined && size >= DIRECT_FROM_BYTES;
    this.buf = whole ?? (this.pooled ? pool.take() : Buffer.allocUnsafe(Math.max(1, size)));
    if (whole) {
      this.fill = size;
      this.received = size;
    }
    this.hasher = verifiedUpstream && size >= ALWAYS_HASH_BELOW ? undefined : sha256Hasher();
  }

  /** Bytes taken so far. */
  get receivedBytes(): number {
    return this.received;
  }

  /**
   * Takes the next piece of the chunk. Returns a promise only when the piece filled the
   * buffer and it is being written out; most pieces are a plain copy.
   */
  append(piece: Buffer): Promise<void> | undefined {
    this.received += piece.length;
    if (this.received > this.size)
      throw new SedfsError('SEDFS_ERR_BODY_TOO_LARGE', 'more bytes than content-length');
    return this.copyIn(piece);
  }

  private copyIn(piece: Buffer): Promise<void> | undefined {
    // Aborted (the rest of a piece, after the flush that made room for it): the buffer
    // is no longer this write's.
    if (this.done) throw writeClosed();
    const n = piece.copy(this.buf, this.fill);
    this.fill += n;
    if (this.fill < this.buf.length) return undefined;
    const flushed = this.flush();
    return n === piece.length ? flushed : flushed.then(() => this.copyIn(piece.subarray(n)));
  }

  /**
   * Checks that every byte arrived and hashes to the id, before anything is made
   * durable: a chain head calls this before it lets the next server see its last byte.
   */
  verify(): void {
    if (this.verified) return;
    if (this.received !== this.size) throw new SedfsError('SEDFS_ERR_BODY_INCOMPLETE');
    this.hashBuffered();
    if (this.hasher && this.hasher.digestHex() !== this.id) throw new SedfsError('SEDFS_ERR_HASH_MISMATCH');
    this.verified = true;
  }

  /** Verifies (unless done already), makes the chunk durable and visible; refuses and cleans up otherwise. */
  async commit(): Promise<void> {
    try {
      this.verify();
      await this.flush();
      // A direct write's last block was padded to the alignment: cut the file back.
      if (this.direct && this.size % DIRECT_ALIGN !== 0) await this.fh.truncate(this.size);
      // fdatasync: the data and the size; the times it skips do not matter to a chunk.
      await this.fh.datasync();
      await this.close();
      await this.store.placeWrite(this.id, this.tmp, this.final, this.size, this.hasher !== undefined);
    } catch (err) {
      await this.abort();
      throw this.store.writeFailed(err, this.size);
    }
  }

  async abort(): Promise<void> {
    await this.close();
    await rm(this.tmp, { force: true });
  }

  /** One big hash update for what the buffer holds, not one per network piece. */
  private hashBuffered(): void {
    if (this.hasher && this.fill > this.hashed) this.hasher.update(this.buf.subarray(this.hashed, this.fill));
    this.hashed = this.fill;
  }

  /**
   * Hashes what the buffer holds and writes it. Only the last flush of a chunk can end
   * off the alignment; it is padded.
   */
  private flush(): Promise<void> {
    this.flushing = this.writeOut();
    return this.flushing;
  }

  private async writeOut(): Promise<void> {
    if (this.done) throw writeClosed();
    if (this.fill === 0) return;
    this.hashBuffered();
    let len = this.fill;
    if (this.direct && len % DIRECT_ALIGN !== 0) {
      const padded = Math.ceil(len / DIRECT_ALIGN) * DIRECT_ALIGN;
      this.buf.fill(0, len, padded);
      len = padded;
    }
    let off = 0;
    this.writing = true;
    try {
      while (off < len) {
        // Aborted between two partial writes: the rest is not worth writing.
        if (this.done) throw writeClosed();
        const { bytesWritten } = await this.fh.write(this.buf, off, len - off, this.written + off);
        off += bytesWritten;
      }
    } catch (err) {
      // A full disk mid-chunk (the route aborts the write, which removes the file).
      throw this.store.writeFailed(err, this.size);
    } finally {
      this.writing = false;
    }
    this.written += this.fill;
    this.fill = 0;
    this.hashed = 0;
  }

  /** Once, whoever asks first (commit, an abort, or both): later callers wait for the same. */
  private close(): Promise<void> {
    this.closing ??= this.release();
    return this.closing;
  }

  private async release(): Promise<void> {
    this.done = true;
    // An abort can come while a flush is writing from the buffer (the client hung up, the
    // chain failed): given back now, another chunk's write could take it and refill it
    // under that write, and store or send its bytes in the place of these.
    if (this.writing) await this.flushing?.catch(ignore);
    if (this.pooled) this.pool.give(this.buf);
    await this.fh.close();
  }
}

const writeClosed = () => new Error('the chunk write was closed');
