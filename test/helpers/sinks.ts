import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';

/** A writable that keeps every byte written, for small reads in tests. */
export function collector(): { sink: Writable; bytes: () => Buffer } {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      parts.push(Buffer.from(c));
      cb();
    },
  });
  return { sink, bytes: () => Buffer.concat(parts) };
}

/** A writable that keeps only a running SHA-256 and a byte count, for big reads. */
export function hashingSink(): { sink: Writable; digest: () => string; bytes: () => number } {
  const h = createHash('sha256');
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      bytes += chunk.length;
      cb();
    },
  });
  return { sink, digest: () => h.digest('hex'), bytes: () => bytes };
}
