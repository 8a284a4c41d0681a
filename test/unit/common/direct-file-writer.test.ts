import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { after, test } from 'node:test';
import { createFileWriter } from '../../../src/common/direct-file-writer.js';

const roots = [mkdtempSync(join(tmpdir(), 'sedfs-writer-'))];
// tmpfs refuses O_DIRECT: there the writer must fall back to buffered writes.
if (existsSync('/dev/shm')) roots.push(mkdtempSync('/dev/shm/sedfs-writer-'));
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

async function writeInPieces(path: string, data: Buffer, sizes: number[]): Promise<void> {
  const out = createFileWriter(path, 0o600);
  let off = 0;
  for (let i = 0; off < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length] as number, data.length - off);
    if (!out.write(data.subarray(off, off + n))) await new Promise((r) => out.once('drain', r));
    off += n;
  }
  out.end();
  await finished(out);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

for (const root of roots) {
  test(`a file written in odd-sized pieces has exactly those bytes and length (${root.startsWith('/dev/shm') ? 'tmpfs, buffered' : 'disk'})`, async () => {
    // Over two 4 MiB stages and a ragged end, in pieces that straddle stage borders.
    for (const size of [0, 1, 4095, 4096, 9 * 1024 * 1024 + 123]) {
      const data = randomBytes(size);
      const path = join(root, `f${size}`);
      await writeInPieces(path, data, [1000, 3 * 1024 * 1024 + 7, 65536]);
      assert.equal(statSync(path).size, size);
      assert.equal(sha(readFileSync(path)), sha(data), `content of a ${size}-byte file`);
      assert.equal(statSync(path).mode & 0o777, 0o600);
    }
  });
}

test('the writer never replaces an existing file', () => {
  const path = join(roots[0] as string, 'exists');
  writeFileSync(path, 'keep me');
  assert.throws(() => createFileWriter(path, 0o600), { code: 'EEXIST' });
  assert.equal(readFileSync(path, 'utf8'), 'keep me');
});

test('pieces in the writer’s own buffers land whole and in order, buffers made mid-file included, and each may be reused once its write is called back', async () => {
  const path = join(roots[0] as string, 'own-buffers');
  const out = createFileWriter(path, 0o600);
  const own = (size: number, fill: Buffer) => {
    // Where O_DIRECT is refused the writer has no buffers of its own: plain ones then.
    const buf = out.bufferFor ? out.bufferFor(size + 16) : Buffer.alloc(size + 16);
    fill.copy(buf);
    return buf.subarray(0, fill.length);
  };
  // Each piece is made just before it is written: a buffer made after the file's first
  // block was written must not disturb it.
  const pieces = [
    () => own(1024 * 1024, randomBytes(1024 * 1024)),
    () => own(8192, randomBytes(8192)),
    () => Buffer.from(randomBytes(1000)),
    // After a piece that was not whole blocks: staged like any other.
    () => own(1024 * 1024, randomBytes(1024 * 1024)),
    () => own(8192, randomBytes(5000)),
    // Smaller than one block, as a small file's only chunk.
    () => own(100, randomBytes(17)),
  ];
  const expected: Buffer[] = [];
  for (const make of pieces) {
    const piece = make();
    expected.push(Buffer.from(piece));
    // The caller reuses the buffer the moment its write is called back.
    await new Promise<void>((resolve, reject) =>
      out.write(piece, (err) => {
        piece.fill(0xee);
        if (err) reject(err);
        else resolve();
      }),
    );
  }
  out.end();
  await finished(out);
  const all = Buffer.concat(expected);
  assert.equal(statSync(path).size, all.length);
  assert.equal(sha(readFileSync(path)), sha(all));
});

test('a file expected to be small is written through the page cache, with no buffers of the writer’s own', async () => {
  const path = join(roots[0] as string, 'small-expected');
  const out = createFileWriter(path, 0o600, 5000);
  assert.equal(out.bufferFor, undefined);
  out.end(Buffer.from('small'));
  await finished(out);
  assert.equal(readFileSync(path, 'utf8'), 'small');
});

test('a file that cannot be made is refused before the writer is returned, whatever its size', () => {
  const missing = join(roots[0] as string, 'no-such-folder');
  for (const size of [undefined, 10, 8 * 1024 * 1024])
    assert.throws(() => createFileWriter(join(missing, 'f'), 0o600, size), { code: 'ENOENT' });
  assert.equal(existsSync(missing), false);
});
