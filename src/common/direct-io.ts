import { closeSync, constants, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomHexId } from '../crypto/hash.js';

/**
 * Writes that bypass the page cache (O_DIRECT). On the VMs we measured, every fresh page
 * of page cache costs 1.5–2.9 s per GiB of CPU, more than hashing and copying together;
 * chunk files are written once and read rarely, so caching them buys nothing. O_DIRECT
 * needs memory, file offsets and lengths aligned to the device's block size: buffers
 * are over-allocated and used from an aligned offset, the last block is padded and the
 * file truncated back. Where O_DIRECT is missing (macOS, Windows) or refused (tmpfs),
 * writes stay buffered.
 */
export const DIRECT_ALIGN = 4096;

const O_DIRECT: number | undefined = (constants as Record<string, number>).O_DIRECT;

/** the offset at which the last aligned buffer's memory was aligned */
let lastAligned = 0;

export class DirectIo {
  private closed = false;
  /** Where each buffer alignedBuffer made starts in its memory, and how long it is. */
  private readonly made = new WeakMap<ArrayBufferLike, { offset: number; length: number }>();

  private constructor(private readonly probeFd: number) {}

  /** Flags to create a new file for direct writes; undefined where O_DIRECT does not exist. */
  static get newFileFlags(): number | undefined {
    if (O_DIRECT === undefined) return undefined;
    return constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_DIRECT;
  }

  /**
   * O_DIRECT in `dir` if this system and filesystem allow it, else undefined. Aligned
   * buffers are found by writing to a nameless file of its own there, never to a file
   * being written (a probe after its first block was written would overwrite it).
   * `close` when done.
   */
  static open(dir: string): DirectIo | undefined {
    if (O_DIRECT === undefined) return undefined;
    const path = join(dir, `.direct-probe-${randomHexId(6)}`);
    let fd: number | undefined;
    try {
      closeSync(openSync(path, 'wx'));
      fd = openSync(path, constants.O_WRONLY | O_DIRECT);
      // Only the open descriptor is needed: the name goes at once, leaving nothing behind.
      rmSync(path, { force: true });
      const io = new DirectIo(fd);
      io.alignedBuffer(DIRECT_ALIGN); // proves a direct write works here
      return io;
    } catch {
      if (fd !== undefined) closeSync(fd);
      rmSync(path, { force: true });
      return undefined;
    }
  }

  /** Flags for reading a chunk file this way. */
  get readFlags(): number {
    return constants.O_RDONLY | (O_DIRECT as number);
  }

  /** Flags for a new chunk file written this way. */
  get createFlags(): number {
    return constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (O_DIRECT as number);
  }

  /**
   * A `size`-byte buffer whose memory starts on a DIRECT_ALIGN boundary. JavaScript cannot
   * see addresses, so the offset is found by trying one direct write from each candidate,
   * the one that worked last time first: allocations alike tend to sit alike (a large
   * one 16 bytes past a page), and each failed try is a system call and an exception
   * (a download of 2,000 small files spent 4.4 s of its 14 s on them).
   */
  alignedBuffer(size: number): Buffer {
    // A closed descriptor's number may be another file's by now: never probe through it.
    if (this.closed) throw new Error('direct I/O closed');
    // Room for one whole probe block past every candidate offset, however small `size`.
    const raw = Buffer.allocUnsafeSlow(Math.max(size, DIRECT_ALIGN) + DIRECT_ALIGN);
    const tryAt = (off: number) => {
      try {
        writeSync(this.probeFd, raw, off, DIRECT_ALIGN, 0);
        return true;
      } catch {
        return false;
      }
    };
    const at = (off: number) => {
      this.made.set(raw.buffer, { offset: off, length: size });
      return raw.subarray(off, off + size);
    };
    if (tryAt(lastAligned)) return at(lastAligned);
    for (let off = 0; off < DIRECT_ALIGN; off += 16) {
      if (off !== lastAligned && tryAt(off)) {
        lastAligned = off;
        return at(off);
      }
    }
    throw new Error('no aligned offset found for direct I/O');
  }

  /**
   * Whether `buf` begins where a buffer alignedBuffer made begins, with at least `room`
   * bytes of it from there (its own length by default): such memory can go to a direct
   * write as it is, without a copy into an aligned buffer first.
   */
  startsAligned(buf: Buffer, room = buf.length): boolean {
    const made = this.made.get(buf.buffer);
    return made !== undefined && made.offset === buf.byteOffset && made.length >= room;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.probeFd);
  }
}
