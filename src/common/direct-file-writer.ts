import { close, createWriteStream, ftruncate, openSync, write } from 'node:fs';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { DIRECT_ALIGN, DirectIo } from './direct-io.js';

const writeAt = promisify(write);
const truncateFd = promisify(ftruncate);
const closeFd = promisify(close);

/** Size of each of the two staging buffers: large writes, few calls. */
const STAGE_BYTES = 4 * 1024 * 1024;
/**
 * Files expected to be smaller than this are written through the page cache: for them
 * the buffers and probes of direct I/O cost more than fresh pages (2,000 files of 4 KiB
 * took 14 s with them, most of it in garbage collection and failed probes).
 */
const DIRECT_FROM_BYTES = 1024 * 1024;

/**
 * A file being written. `bufferFor`, where it exists, makes buffers whose whole-block
 * pieces the writer writes as they are, without copying them first: a caller that
 * fills those (a download receiving chunks) saves a copy of every byte.
 */
export type FileWriter = Writable & { bufferFor?: (size: number) => Buffer };

/**
 * A new local file (a download), written with O_DIRECT where the system and file system
 * allow it, buffered otherwise. A gigabyte written through the page cache costs 1.5–2.9 s
 * of CPU in fresh pages on the VMs we measured, more than fetching and decrypting it.
 * Pieces in memory from `bufferFor` that are whole aligned blocks go to the disk as they
 * are; anything else is copied into two reused aligned staging buffers first (made at
 * the first such piece). The file is created (it must not exist) with `mode` before this
 * returns, which throws if it cannot be. The last block is padded to the alignment and
 * the file cut back to its true length at the end. `expectedBytes` below
 * DIRECT_FROM_BYTES means a plain buffered file.
 */
export function createFileWriter(path: string, mode: number, expectedBytes?: number): FileWriter {
  const flags = DirectIo.newFileFlags;
  // Undefined where O_DIRECT is refused (tmpfs, some network file systems): buffered below.
  const io =
    flags !== undefined && (expectedBytes === undefined || expectedBytes >= DIRECT_FROM_BYTES)
      ? DirectIo.open(dirname(path))
      : undefined;
  if (io) {
    let fd: number | undefined;
    try {
      fd = openSync(path, flags as number, mode);
    } catch (err) {
      io.close();
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    }
    if (fd !== undefined) return new DirectFileWriter(fd, io);
  }
  // Opened here, not by the stream: a stream opens its file later, on its own, so a
  // refused open (EACCES, EROFS, ENAMETOOLONG) became an 'error' event while its caller
  // waited on the network, which nobody listened for (a crash), and a file it created
  // after the caller had given up and cleaned up was left behind.
  return createWriteStream(path, { fd: openSync(path, 'wx', mode) });
}

class DirectFileWriter extends Writable {
  /** made at the first piece that must be staged */
  private stages: Buffer[] = [];
  private current = 0;
  private fill = 0;
  /** file offset of the current stage's first byte */
  private offset = 0;
  /** the one write in flight, from the stage that is not current */
  private inFlight: Promise<void> = Promise.resolve();
  private fdClosed = false;

  constructor(
    private readonly fd: number,
    /** finds aligned buffers (on a scratch file of its own), closed with the file */
    private readonly io: DirectIo,
  ) {
    super({ highWaterMark: STAGE_BYTES });
  }

  readonly bufferFor = (size: number): Buffer => this.io.alignedBuffer(size);

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.take(chunk).then(() => callback(), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.finish().then(() => callback(), callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.inFlight
      .catch(() => undefined)
      .then(() => this.closeOnce())
      .then(
        () => callback(err),
        () => callback(err),
      );
  }

  private async take(chunk: Buffer): Promise<void> {
    // Whole blocks in aligned memory, with nothing staged before them: written as they
    // are, and finished before the caller may reuse the buffer.
    if (
      this.fill === 0 &&
      chunk.length > 0 &&
      chunk.length % DIRECT_ALIGN === 0 &&
      this.io.startsAligned(chunk)
    ) {
      await this.inFlight;
      this.assertOpen();
      const at = this.offset;
      this.offset += chunk.length;
      this.inFlight = this.writeAll(chunk, chunk.length, at);
      await this.inFlight;
      return;
    }
    if (this.stages.length === 0)
      this.stages = [this.io.alignedBuffer(STAGE_BYTES), this.io.alignedBuffer(STAGE_BYTES)];
    let off = 0;
    while (off < chunk.length) {
      const stage = this.stages[this.current] as Buffer;
      const n = chunk.copy(stage, this.fill, off);
      this.fill += n;
      off += n;
      if (this.fill === stage.length) await this.ship(stage.length);
    }
  }

  /**
   * Starts writing the current stage's first `length` bytes and moves to the other
   * stage, once the write that was using it has finished.
   */
  private async ship(length: number): Promise<void> {
    const stage = this.stages[this.current] as Buffer;
    await this.inFlight;
    this.assertOpen();
    this.inFlight = this.writeAll(stage, length, this.offset);
    this.offset += this.fill;
    this.fill = 0;
    this.current = 1 - this.current;
  }

  private async writeAll(buf: Buffer, length: number, position: number): Promise<void> {
    for (let done = 0; done < length; ) {
      const { bytesWritten } = await writeAt(this.fd, buf, done, length - done, position + done);
      done += bytesWritten;
    }
  }

  private async finish(): Promise<void> {
    const size = this.offset + this.fill;
    if (this.fill > 0) {
      const padded = Math.ceil(this.fill / DIRECT_ALIGN) * DIRECT_ALIGN;
      (this.stages[this.current] as Buffer).fill(0, this.fill, padded);
      await this.ship(padded);
    }
    await this.inFlight;
    this.assertOpen();
    await truncateFd(this.fd, size);
    await this.closeOnce();
  }

  /**
   * A write waiting for the one before it may resume after the writer was destroyed
   * (the download failed): its descriptor is closed, or about to be, and its number may
   * be another file's.
   */
  private assertOpen(): void {
    if (this.destroyed || this.fdClosed) throw new Error('the file writer was closed');
  }

  private async closeOnce(): Promise<void> {
    if (this.fdClosed) return;
    this.fdClosed = true;
    this.io.close();
    await closeFd(this.fd);
  }
}
