import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Chunk, ChunkPool, chunked } from '../../../src/client/chunker.js';

async function cut(
  pieces: Buffer[],
  size: number,
  /** bytes each pooled buffer has beyond a chunk (room to seal in place) */
  spare = 0,
): Promise<{ index: number; bytes: string; last: boolean }[]> {
  const pool = new ChunkPool(size + spare);
  const out: { index: number; bytes: string; last: boolean }[] = [];
  for await (const c of chunked(pieces, size, pool) as AsyncIterable<Chunk>) {
    out.push({ index: c.index, bytes: c.bytes.toString(), last: c.last });
    pool.release(c.bytes);
  }
  return out;
}

test('cuts any piece sizes into exact chunks and marks only the final one last', async () => {
  assert.deepEqual(await cut([Buffer.from('abc'), Buffer.from('defg'), Buffer.from('h')], 3), [
    { index: 0, bytes: 'abc', last: false },
    { index: 1, bytes: 'def', last: false },
    { index: 2, bytes: 'gh', last: true },
  ]);
});

test('a stream that ends on a chunk boundary marks its last full chunk last', async () => {
  assert.deepEqual(await cut([Buffer.from('abcdef')], 3), [
    { index: 0, bytes: 'abc', last: false },
    { index: 1, bytes: 'def', last: true },
  ]);
});

test('an empty stream yields one empty last chunk', async () => {
  assert.deepEqual(await cut([], 4), [{ index: 0, bytes: '', last: true }]);
});

test('released buffers are reused rather than allocated again', () => {
  const pool = new ChunkPool(8);
  const a = pool.take();
  pool.release(a.subarray(0, 3));
  assert.equal(pool.take().buffer, a.buffer);
});

test('buffers with room beyond a chunk still yield chunks of exactly the chunk size', async () => {
  for (const pieces of [
    [Buffer.from('abc'), Buffer.from('defg'), Buffer.from('h')],
    [Buffer.from('abcdef')],
    [Buffer.from('abcd')],
    [Buffer.from('ab')],
  ]) {
    assert.deepEqual(await cut(pieces, 3, 16), await cut(pieces, 3), pieces.join('|'));
  }
});

/** A source that reads into the chunk buffers, in reads of at most `most` bytes. */
function readsInto(text: string, most: number) {
  const bytes = Buffer.from(text);
  let at = 0;
  const source = {
    closed: 0,
    async readInto(buf: Buffer, offset: number, length: number): Promise<number> {
      const n = bytes.copy(buf, offset, at, at + Math.min(length, most));
      at += n;
      return n;
    },
    async close() {
      source.closed += 1;
    },
  };
  return source;
}

test('a source that reads into the chunk buffers is cut exactly as the same bytes in pieces, short reads included', async () => {
  for (const text of ['abcdefgh', 'abcdef', 'ab', '']) {
    for (const most of [1, 2, 3, 64]) {
      const source = readsInto(text, most);
      const pool = new ChunkPool(3 + 16);
      const out: { index: number; bytes: string; last: boolean }[] = [];
      for await (const c of chunked(source, 3, pool)) {
        out.push({ index: c.index, bytes: c.bytes.toString(), last: c.last });
        pool.release(c.bytes);
      }
      assert.deepEqual(out, await cut(text ? [Buffer.from(text)] : [], 3), `${text} in reads of ${most}`);
      assert.equal(source.closed, 1, 'closed once at the end');
    }
  }
});

test('a source that reads into the chunk buffers is closed when the consumer stops early', async () => {
  const source = readsInto('abcdefghijkl', 64);
  for await (const c of chunked(source, 3, new ChunkPool(3))) {
    assert.equal(c.index, 0);
    break;
  }
  assert.equal(source.closed, 1);
});
