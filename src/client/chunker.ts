/**
 * Cuts a byte stream into chunks of exactly `size` bytes (the last may be shorter).
 * Each yielded buffer is the caller's until it calls `release`, after which it is
 * reused: fresh memory is slow to touch, and this keeps memory flat however big the file.
 */
export async function* chunked(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  size: number,
  pool: { take(): Buffer; release(buf: Buffer): void },
): AsyncGenerator<Buffer> {
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
        yield buf;
        buf = pool.take();
        fill = 0;
      }
    }
  }
  if (fill > 0) yield buf.subarray(0, fill);
  else pool.release(buf);
}

/** A bounded set of equal-sized buffers; `take` waits for nothing, so callers bound their own concurrency. */
export class ChunkPool {
  private readonly free: Buffer[] = [];
  constructor(readonly size: number) {}
  take = (): Buffer => this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  release = (buf: Buffer): void => {
    // Subarrays of a pooled buffer share its memory: return the whole buffer.
    const whole =
      buf.byteOffset === 0 && buf.buffer.byteLength === this.size
        ? Buffer.from(buf.buffer, 0, this.size)
        : buf;
    if (whole.length === this.size && this.free.length < 16) this.free.push(whole);
  };
}
