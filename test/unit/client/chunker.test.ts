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
