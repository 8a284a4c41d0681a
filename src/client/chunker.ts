import type { ReadsInto } from '../common/files.js';

/** What a put reads: pieces of bytes, or a file that reads into the chunk buffers. */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | ReadsInto;

export interface Chunk {
  index: number;
  bytes: Buffer;
  /** true for the final chunk; an empty stream yields one empty last chunk */
  last: boolean;
}

/**
 * Cuts a byte stream into chunks of exactly `size` bytes (the last may be shorter),
 * knowing which one is last: one chunk is held back until the next byte arrives, so
 * a stream of unknown length can still mark its end. Each yielded buffer is the
 * caller's until it calls `release`, after which it is reused: fresh memory is slow
 * to touch, and this keeps memory flat however big the file.
 */
export async function* chunked(
  source: ByteSource,
  size: number,
  pool: { take(): Buffer; release(buf: Buffer): void },
): AsyncGenerator<Chunk> {
  if ('readInto' in source) {
    try {
      yield* chunkedInPlace(source, size, pool);
    } finally {
      await source.close();
    }
    return;
  }
  let index = 0;
  let held: Buffer | undefined;
  let buf = pool.take();
  let fill = 0;
  for await (const piece of source) {
    let off = 0;
    while (off < piece.length) {
      const n = Math.min(size - fill, piece.length - off);
      buf.set(piece.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === size) {
        if (held) yield { index: index++, bytes: held, last: false };
        // The pool's buffers may be longer than a chunk (room to seal in place).
        held = buf.subarray(0, size);
        buf = pool.take();
        fill = 0;
      }
    }
  }
  yield* lastChunks(index, held, buf, fill, pool);
}

/**
 * The end of a stream: the held full chunk and a short (or empty) last one, or the held
 * chunk alone as the last when nothing came after it.
 */
function* lastChunks(
  index: number,
  held: Buffer | undefined,
  buf: Buffer,
  fill: number,
  pool: { release(buf: Buffer): void },
): Generator<Chunk> {
  if (fill > 0 || !held) {
    if (held) yield { index: index++, bytes: held, last: false };
    yield { index, bytes: buf.subarray(0, fill), last: true };
  } else {
    pool.release(buf);
    yield { index, bytes: held, last: true };
  }
}

/** `chunked` for a source that reads into the chunk buffers themselves. */
async function* chunkedInPlace(
  source: ReadsInto,
  size: number,
  pool: { take(): Buffer; release(buf: Buffer): void },
): AsyncGenerator<Chunk> {
  let index = 0;
  let held: Buffer | undefined;
  for (;;) {
    const buf = pool.take();
    let fill = 0;
    while (fill < size) {
      const n = await source.readInto(buf, fill, size - fill);
      if (n === 0) break;
      fill += n;
    }
    if (fill === size) {
      if (held) yield { index: index++, bytes: held, last: false };
      held = buf.subarray(0, size);
      continue;
    }
    yield* lastChunks(index, held, buf, fill, pool);
    return;
  }
}

/**
 * Equal-sized reusable buffers; callers bound their own concurrency, so the pool stays
 * small. `allocate` makes a new one: in shared memory for worker threads to work on in
 * place (`inSharedMemory`, see sharedChunkPool), or a file writer's aligned buffers that
 * it writes without copying (downloads). A view of a pooled buffer gives the whole
 * buffer back.
 */
export class ChunkPool {
  private readonly free: Buffer[] = [];
  /** each buffer made here, by its memory, so that any view of it finds it */
  private readonly made = new WeakMap<ArrayBufferLike, Buffer>();

  constructor(
    readonly size: number,
    private readonly allocate: (size: number) => Buffer = (n) => Buffer.allocUnsafeSlow(n),
  ) {}

  take = (): Buffer => {
    const reused = this.free.pop();
    if (reused) return reused;
    const made = this.allocate(this.size);
    this.made.set(made.buffer, made);
    return made;
  };

  release = (buf: Buffer): void => {
    const whole = this.made.get(buf.buffer);
    if (whole && this.free.length < 16 && !this.free.includes(whole)) this.free.push(whole);
  };
}

/** Buffers in memory worker threads can share. */
export const inSharedMemory = (size: number): Buffer => Buffer.from(new SharedArrayBuffer(size));

const sharedPools = new Map<number, ChunkPool>();

/**
 * The process's pool of shared-memory buffers of `size`, kept across transfers: a
 * shared buffer is freed only once every thread that saw it has let go of it, so
 * making new ones per file (thousands of small puts) piles them up.
 */
export function sharedChunkPool(size: number): ChunkPool {
  let pool = sharedPools.get(size);
  if (!pool) {
    pool = new ChunkPool(size, inSharedMemory);
    sharedPools.set(size, pool);
  }
  return pool;
}
