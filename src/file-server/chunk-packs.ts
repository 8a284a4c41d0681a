import { appendFile, type FileHandle, open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isGone, mkdirDurable, renameReplacing, syncDir } from '../common/files.js';
import { mapInParallel } from '../common/parallel.js';
import { randomHexId, sha256Hex } from '../crypto/hash.js';
import { isChunkId } from '../protocol/chunk-id.js';
import { SedfsError } from '../protocol/errors.js';
import { PackedIndex } from './packed-index.js';

/**
 * The small chunks of one batch, stored together in one pack file: a batch costs one
 * create, one write, one fdatasync, one rename and one folder fsync, not one of each per
 * chunk (on the VMs we measured each of those costs 0.02–0.4 ms of kernel time, and a
 * small file's chunk paid all of them on every replica).
 *
 * A pack is `packs/<16 hex>.pack`: the magic `SEDFSPK1`, a 4-byte count, then per chunk its
 * 32-byte id and 4-byte size, then the chunks' bytes in that order. It is written whole
 * in `tmp/`, fsynced, renamed into place and its folder fsynced, so a pack that exists is
 * complete; each chunk was checked against its id before, and the scrubber checks again.
 *
 * Removing a chunk appends its id to the pack's `<name>.dead`, without an fsync: a removal
 * lost in a crash brings back a chunk main no longer wants, which this server's next
 * inventory shows main as extra, and main deletes it again. A pack whose chunks are all
 * dead is deleted. A chunk is live in one place only: a copy found while another is live
 * (in a chunk file, or a pack read earlier) is marked dead at once.
 *
 * A pack more than half of whose bytes are dead is compacted, in the background and one
 * pack at a time: its live chunks are read, checked against their ids and written as a
 * new pack (durable before anything else changes), then the old pack is deleted. A crash
 * in between leaves both, and loading keeps one live copy of each chunk as above.
 *
 * Which chunks are live where is held in a compact table (packed-index.ts), ~60–90 bytes
 * per chunk; a pack itself is a number, a name and three counts.
 */
export class ChunkPacks {
  private readonly live = new PackedIndex();
  private readonly packs = new Map<number, Pack>();
  private lastPackNo = 0;
  /** the compactions asked for, one after another */
  private compactions: Promise<void> = Promise.resolve();

  constructor(
    readonly dir: string,
    private readonly tmpDir: string,
    /** whether a chunk is stored as a file of its own */
    private readonly isFile: (id: string) => boolean,
    /** hears of a compaction that failed (the pack stays as it was) */
    private readonly onCompactFailed: (pack: string, why: string) => void = () => undefined,
    /** how a directory is made durable (the store's: see syncDirWhereSupported) */
    private readonly syncDirectory: (dir: string) => Promise<void> = syncDir,
  ) {}

  /** Resolves once every compaction asked for so far is done. */
  compacted(): Promise<void> {
    return this.compactions;
  }

  /**
   * Reads every pack's index; `onBad` is given a pack (file name) that cannot be read.
   * Chunk files are not looked for here (a `stat` per packed chunk took most of the
   * load): the store retires the packed copy of each chunk file it finds afterwards.
   */
  async load(
    onBad: (file: string, why: string) => Promise<void>,
  ): Promise<{ chunks: number; bytes: number }> {
    await mkdirDurable(this.dir, this.syncDirectory);
    const names = (await readdir(this.dir)).sort();
    const present = new Set(names);
    // A .dead file whose pack is gone: the pack was deleted, then the crash came.
    for (const file of names)
      if (file.endsWith('.dead') && !present.has(file.replace(/\.dead$/, '.pack')))
        await rm(join(this.dir, file), { force: true });
    const packs = names.filter((f) => f.endsWith('.pack'));
    let chunks = 0;
    let bytes = 0;
    // Headers are read a window of packs at a time, several side by side (each is a few
    // file-system calls, mostly waiting), and adopted in name order.
    for (let i = 0; i < packs.length; i += LOAD_WINDOW) {
      const read = await mapInParallel(
        packs.slice(i, i + LOAD_WINDOW),
        LOAD_READS,
        async (file): Promise<PackRead> => {
          const name = file.slice(0, -'.pack'.length);
          let entries: PackEntry[];
          try {
            entries = await readIndex(join(this.dir, file));
          } catch (err) {
            return { file, bad: (err as Error).message };
          }
          const dead = present.has(`${name}.dead`) ? await this.readDead(name) : new Set<string>();
          return { file, name, entries, dead };
        },
      );
      for (const r of read) {
        if ('bad' in r) {
          await onBad(r.file, r.bad);
          continue;
        }
        const total = r.entries.reduce((n, e) => n + e.size, 0);
        const live = r.entries.filter((e) => !r.dead.has(e.id));
        for (const e of await this.adopt(r.name, live, total, false)) {
          chunks += 1;
          bytes += e.size;
        }
      }
    }
    return { chunks, bytes };
  }

  has(id: string): boolean {
    return this.live.has(id);
  }

  /** Where a packed chunk's bytes are, if it is packed here. */
  locate(id: string): { path: string; offset: number; size: number } | undefined {
    const p = this.live.get(id);
    const pack = p && this.packs.get(p.pack);
    return p && pack && { path: this.packPath(pack.name), offset: p.offset, size: p.size };
  }

  /** Every packed id, ascending (copied when iteration starts: the packs may change meanwhile). */
  sortedIds(): Iterator<string> {
    return this.live.sortedIds();
  }

  /**
   * Stores checked chunks as one pack, telling `onLive` which became live here (a chunk
   * live here already, in a file or a pack, is left out) as soon as the pack is in place,
   * before its folder's fsync: if that fails, the write fails but the pack stays, and had
   * gone unlisted and uncounted until a restart (as a chunk file's, ChunkStore.placeFile).
   */
  async write(
    chunks: { id: string; bytes: Buffer }[],
    onLive: (added: { id: string; size: number }[]) => void,
  ): Promise<void> {
    const named = new Set<string>();
    const fresh = chunks.filter((c) => {
      if (named.has(c.id) || this.live.has(c.id) || this.isFile(c.id)) return false;
      named.add(c.id);
      return true;
    });
    if (fresh.length === 0) return;
    const { name, entries, bytes } = await this.writePackFile(fresh);
    // Another write may have made some of these live meanwhile: adopt leaves those dead.
    onLive(await this.adopt(name, entries, bytes));
    await this.syncDirectory(this.dir);
  }

  /** Writes `chunks` as a new pack, its bytes durable and in place (its folder not yet synced). */
  private async writePackFile(
    chunks: { id: string; bytes: Buffer }[],
  ): Promise<{ name: string; entries: PackEntry[]; bytes: number }> {
    const header = Buffer.alloc(HEADER_BYTES + ENTRY_BYTES * chunks.length);
    header.write(MAGIC, 0, 'latin1');
    header.writeUInt32BE(chunks.length, MAGIC.length);
    chunks.forEach((c, i) => {
      const at = HEADER_BYTES + ENTRY_BYTES * i;
      header.write(c.id, at, 'hex');
      header.writeUInt32BE(c.bytes.length, at + 32);
    });
    const name = randomHexId(8);
    const tmp = join(this.tmpDir, `${name}.pack.part`);
    const fh = await open(tmp, 'wx', 0o644);
    try {
      const parts = [header, ...chunks.map((c) => c.bytes)];
      const total = parts.reduce((n, b) => n + b.length, 0);
      let { bytesWritten } = await fh.writev(parts, 0);
      // writev may stop short (rarely, for large totals): the rest goes in plain writes.
      if (bytesWritten < total) {
        const all = Buffer.concat(parts);
        while (bytesWritten < total)
          bytesWritten += (await fh.write(all, bytesWritten, total - bytesWritten, bytesWritten))
            .bytesWritten;
      }
      await fh.datasync();
    } catch (err) {
      await fh.close();
      await rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    await renameReplacing(tmp, this.packPath(name));
    let offset = header.length;
    const entries = chunks.map((c) => {
      const entry = { id: c.id, offset, size: c.bytes.length };
      offset += entry.size;
      return entry;
    });
    return { name, entries, bytes: offset - header.length };
  }

  /**
   * Makes a pack's entries live here, except those live elsewhere already, which are
   * marked dead in it; a pack left with nothing live is deleted. Returns what became live.
   */
  private async adopt(
    name: string,
    entries: PackEntry[],
    bytes: number,
    /** whether a chunk file of the same id makes a packed copy dead (not at load) */
    checkFiles = true,
  ): Promise<PackEntry[]> {
    const pack = this.newPack(name, bytes);
    const added: PackEntry[] = [];
    const duplicates: string[] = [];
    for (const e of entries) {
      if (this.live.has(e.id) || (checkFiles && this.isFile(e.id))) duplicates.push(e.id);
      else {
        this.goLive(pack, e);
        added.push(e);
      }
    }
    if (duplicates.length > 0) await this.markDead(name, duplicates);
    if (pack.live === 0) await this.deletePack(pack);
    else this.compactIfMostlyDead(pack);
    return added;
  }

  private newPack(name: string, bytes: number): Pack {
    const pack = { no: ++this.lastPackNo, name, live: 0, liveBytes: 0, bytes };
    this.packs.set(pack.no, pack);
    return pack;
  }

  private goLive(pack: Pack, e: PackEntry): void {
    this.live.set(e.id, { pack: pack.no, offset: e.offset, size: e.size });
    pack.live += 1;
    pack.liveBytes += e.size;
  }

  /** Marks a packed chunk dead; returns its size, or undefined if it is not packed here. */
  async remove(id: string): Promise<number | undefined> {
    const p = this.live.delete(id);
    const pack = p && this.packs.get(p.pack);
    if (!p || !pack) return undefined;
    pack.live -= 1;
    pack.liveBytes -= p.size;
    if (pack.live === 0) await this.deletePack(pack);
    else {
      await this.markDead(pack.name, [id]);
      this.compactIfMostlyDead(pack);
    }
    return p.size;
  }

  /** Queues `pack` for compaction once more than half of its bytes are dead. */
  private compactIfMostlyDead(pack: Pack): void {
    if (pack.liveBytes * 2 >= pack.bytes) return;
    this.compactions = this.compactions
      .then(() => this.compact(pack))
      .catch((err: Error) => this.onCompactFailed(pack.name, err.message));
  }

  /**
   * Rewrites a pack's live chunks as a new pack, then deletes the old one. A chunk that
   * no longer matches its id stops it: the scrubber quarantines that chunk, and the next
   * removal tries again.
   */
  private async compact(pack: Pack): Promise<void> {
    // Already compacted (it was queued twice) or emptied meanwhile.
    if (pack.live === 0 || pack.liveBytes * 2 >= pack.bytes) return;
    const chunks: { id: string; bytes: Buffer }[] = [];
    const fh = await open(this.packPath(pack.name), 'r').catch((err: NodeJS.ErrnoException) => {
      // Its last chunk went meanwhile, and the pack with it: nothing to compact.
      if (isGone(err) && pack.live === 0) return undefined;
      throw err;
    });
    if (!fh) return;
    try {
      // The chunks live in it now are copied (a removed chunk's bytes stay in the old
      // pack until it is deleted); whatever is removed from here on is sorted out at the
      // switch below.
      const copying = (await readIndexOf(fh)).filter((e) => this.live.get(e.id)?.pack === pack.no);
      // Its last live chunks went while the index was read: deleted with them, not rewritten.
      if (copying.length === 0) return;
      for (const { id, ...p } of copying) {
        const bytes = Buffer.allocUnsafe(p.size);
        const { bytesRead } = await fh.read(bytes, 0, p.size, p.offset);
        if (bytesRead !== p.size || sha256Hex(bytes) !== id)
          throw new Error(`chunk ${id} in it no longer matches its id`);
        chunks.push({ id, bytes });
      }
    } finally {
      await fh.close();
    }
    const next = await this.writePackFile(chunks);
    // What is still live in the old pack moves to the new one; what was removed while
    // this ran is dead in the new one as well.
    const moved = this.newPack(next.name, next.bytes);
    const removed: string[] = [];
    for (const e of next.entries) {
      if (this.live.get(e.id)?.pack !== pack.no) {
        removed.push(e.id);
        continue;
      }
      this.goLive(moved, e);
      pack.live -= 1;
      pack.liveBytes -= e.size;
    }
    if (removed.length > 0) await this.markDead(moved.name, removed);
    if (moved.live === 0) await this.deletePack(moved);
    await this.deletePack(pack);
  }

  private packPath(name: string): string {
    return join(this.dir, `${name}.pack`);
  }

  private deadPath(name: string): string {
    return join(this.dir, `${name}.dead`);
  }

  private async markDead(name: string, ids: string[]): Promise<void> {
    await appendFile(this.deadPath(name), ids.map((id) => `${id}\n`).join(''));
  }

  private async readDead(name: string): Promise<Set<string>> {
    try {
      // A line cut short by a crash is not an id, so it is skipped.
      return new Set((await readFile(this.deadPath(name), 'latin1')).split('\n').filter(isChunkId));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
      throw err;
    }
  }

  private async deletePack(pack: Pack): Promise<void> {
    this.packs.delete(pack.no);
    await rm(this.packPath(pack.name), { force: true });
    await rm(this.deadPath(pack.name), { force: true });
  }
}

interface Pack {
  /** its number in the index of live chunks */
  no: number;
  name: string;
  /** how many of its chunks are live */
  live: number;
  liveBytes: number;
  /** all its chunks' bytes, dead ones included */
  bytes: number;
}

/** A pack's header as read at start, or why it could not be. */
type PackRead =
  | { file: string; bad: string }
  | { file: string; name: string; entries: PackEntry[]; dead: Set<string> };

interface PackEntry {
  id: string;
  offset: number;
  size: number;
}

/**
 * Chunks smaller than this are always hashed, even from a verified upstream: hashing
 * them costs nothing, and it covers the empty chunk, which arrives before the upstream
 * could have checked anything.
 */
export const ALWAYS_HASH_BELOW = 64 * 1024;

/**
 * Packs whose headers are read per step at start, and how many of those side by side.
 * A million chunks in 20,834 packs: one after another 7.9–8.3 s to start, 16 by 4
 * 3.1–3.2 s at a peak of 191 MiB, 64 by 16 2.6 s but 202–229 MiB
 * (bench/probes/packs-index.mjs).
 */
const LOAD_WINDOW = 16;
const LOAD_READS = 4;

const MAGIC = 'SEDFSPK1';
const HEADER_BYTES = MAGIC.length + 4;
const ENTRY_BYTES = 32 + 4;
/** No batch holds more; a count above this is a damaged header. */
const MAX_ENTRIES = 4096;

/** A pack's index, checked against the pack's length. */
async function readIndex(path: string): Promise<PackEntry[]> {
  const fh = await open(path, 'r');
  try {
    return await readIndexOf(fh);
  } finally {
    await fh.close();
  }
}

async function readIndexOf(fh: FileHandle): Promise<PackEntry[]> {
  const { size: fileBytes } = await fh.stat();
  const head = Buffer.alloc(HEADER_BYTES);
  await fh.read(head, 0, HEADER_BYTES, 0);
  const count = head.readUInt32BE(MAGIC.length);
  if (head.toString('latin1', 0, MAGIC.length) !== MAGIC || count < 1 || count > MAX_ENTRIES)
    throw new SedfsError('SEDFS_ERR_CORRUPT_CHUNK', 'not a pack header');
  const index = Buffer.alloc(ENTRY_BYTES * count);
  const { bytesRead } = await fh.read(index, 0, index.length, HEADER_BYTES);
  if (bytesRead !== index.length) throw new SedfsError('SEDFS_ERR_CORRUPT_CHUNK', 'pack index cut short');
  const entries: PackEntry[] = [];
  let offset = HEADER_BYTES + index.length;
  for (let i = 0; i < count; i++) {
    const size = index.readUInt32BE(ENTRY_BYTES * i + 32);
    entries.push({ id: index.toString('hex', ENTRY_BYTES * i, ENTRY_BYTES * i + 32), offset, size });
    offset += size;
  }
  if (offset !== fileBytes)
    throw new SedfsError('SEDFS_ERR_CORRUPT_CHUNK', 'pack length does not match its index');
  return entries;
}

/**
 * A batch of small chunks being received into one buffer. Each chunk is checked the
 * moment its last byte arrives (a piece goes on down the chain only after that), and
 * the whole batch becomes one pack at `commit`; nothing of it is stored before.
 */
export class PackWrite {
  private readonly buf: Buffer;
  /** where each chunk ends in `buf` */
  private readonly ends: number[];
  private fill = 0;
  /** the chunk being received */
  private next = 0;

  constructor(
    private readonly ids: string[],
    sizes: number[],
    /** skips hashing what an upstream server checked, as ChunkWrite does */
    private readonly verifiedUpstream: boolean,
    private readonly place: (chunks: { id: string; bytes: Buffer }[]) => Promise<void>,
  ) {
    let end = 0;
    this.ends = sizes.map((n) => (end += n));
    this.buf = Buffer.allocUnsafe(end);
  }

  get complete(): boolean {
    return this.next === this.ids.length;
  }

  /** Takes the next piece of the body, and checks every chunk it completes. */
  append(piece: Buffer): void {
    if (this.fill + piece.length > this.buf.length)
      throw new SedfsError('SEDFS_ERR_BODY_TOO_LARGE', 'more bytes than the sizes');
    this.fill += piece.copy(this.buf, this.fill);
    while (!this.complete && (this.ends[this.next] as number) <= this.fill) {
      const bytes = this.chunk(this.next);
      const trusted = this.verifiedUpstream && bytes.length >= ALWAYS_HASH_BELOW;
      if (!trusted && sha256Hex(bytes) !== this.ids[this.next])
        throw new SedfsError('SEDFS_ERR_HASH_MISMATCH', `chunk ${this.next + 1} of the batch`);
      this.next += 1;
    }
  }

  async commit(): Promise<void> {
    if (!this.complete) throw new SedfsError('SEDFS_ERR_BODY_INCOMPLETE');
    await this.place(this.ids.map((id, i) => ({ id, bytes: this.chunk(i) })));
  }

  private chunk(i: number): Buffer {
    return this.buf.subarray(i === 0 ? 0 : (this.ends[i - 1] as number), this.ends[i]);
  }
}
