import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ChunkPool, inSharedMemory } from '../../../src/client/chunker.js';
import { SealWorkers } from '../../../src/client/seal-workers.js';
import { ChunkSealer, openChunk } from '../../../src/crypto/content.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const SIZE = 256 * 1024;

test('a chunk sealed on a worker thread is byte for byte what sealing here gives, with its id', async () => {
  const workers = new SealWorkers(2);
  const key = randomBytes(32);
  const plainPool = new ChunkPool(SIZE, inSharedMemory);
  const sealedPool = new ChunkPool(SIZE + 16, inSharedMemory);
  const inWorkers = new ChunkSealer('ab'.repeat(16), key);
  const here = new ChunkSealer('ab'.repeat(16), key);
  const results = await Promise.all(
    [0, 1, 2, 3, 4].map(async (index) => {
      const plain = plainPool.take();
      plain.set(randomBytes(SIZE));
      // The last chunk is shorter and a view into its pooled buffer, as the chunker yields it.
      const bytes = index === 4 ? plain.subarray(0, 1000) : plain;
      const sealed = await workers.seal(inWorkers, index, index === 4, bytes, sealedPool.take());
      return { index, bytes: Buffer.from(bytes), sealed };
    }),
  );
  for (const r of results) {
    const expected = here.seal(r.index, r.index === 4, r.bytes);
    assert.ok(r.sealed.bytes.equals(expected), `chunk ${r.index}`);
    assert.equal(r.sealed.id, sha(expected));
    assert.ok(openChunk(key, 'ab'.repeat(16), r.index, r.index === 4, r.sealed.bytes).equals(r.bytes));
  }
});

test('an index sealed once under a key is refused a second time, on a worker as here', async () => {
  const workers = new SealWorkers(1);
  const sealer = new ChunkSealer('cd'.repeat(16));
  const pool = new ChunkPool(SIZE + 16, inSharedMemory);
  await workers.seal(sealer, 0, false, pool.take().subarray(0, SIZE), pool.take());
  await assert.rejects(
    workers.seal(sealer, 0, false, pool.take().subarray(0, SIZE), pool.take()),
    /already sealed/,
  );
});

test('buffers that are not shared memory are sealed on the calling thread, with the same result', async () => {
  const workers = new SealWorkers(1);
  const key = randomBytes(32);
  const plain = randomBytes(5000);
  const got = await workers.seal(new ChunkSealer('ef'.repeat(16), key), 7, true, plain, Buffer.alloc(5016));
  const expected = new ChunkSealer('ef'.repeat(16), key).seal(7, true, plain);
  assert.ok(got.bytes.equals(expected));
  assert.equal(got.id, sha(expected));
});

test('a chunk sealed in place, in its own buffer with room for the tag, is what sealing elsewhere gives', async () => {
  const workers = new SealWorkers(1);
  const key = randomBytes(32);
  const pool = new ChunkPool(SIZE + 16, inSharedMemory);
  const buf = pool.take();
  const plain = buf.subarray(0, SIZE);
  plain.set(randomBytes(SIZE));
  const copy = Buffer.from(plain);
  const sealed = await workers.seal(new ChunkSealer('12'.repeat(16), key), 1, false, plain, buf);
  const expected = new ChunkSealer('12'.repeat(16), key).seal(1, false, copy);
  assert.ok(sealed.bytes.equals(expected));
  assert.equal(sealed.id, sha(expected));
});
