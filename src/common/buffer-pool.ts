/**
 * Buffers of one size, reused: on this kind of VM first touching fresh memory costs
 * 1.5–2.9 s per GiB, so bulk paths take their buffers from here and give them back.
 * At most `keep` idle buffers are held; a buffer of another size is not taken back.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  constructor(
    readonly size: number,
    private readonly keep: number,
    private readonly make: (size: number) => Buffer = (n) => Buffer.allocUnsafe(n),
  ) {}
  take(): Buffer {
    return this.free.pop() ?? this.make(this.size);
  }
  give(buf: Buffer): void {
    if (buf.length === this.size && this.free.length < this.keep) this.free.push(buf);
  }
}
