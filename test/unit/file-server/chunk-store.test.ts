import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BufferPool } from '../../../src/common/buffer-pool.js';
import { syncDirWhereSupported } from '../../../src/common/files.js';
import { ChunkStore, ChunkWrite } from '../../../src/file-server/chunk-store.js';

const root = mkdtempSync(join(tmpdir(), 'sedfs-chunks-'));
after(() => rmSync(root, { recursive: true, force: true }));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let n = 0;
async function fresh(): Promise<ChunkStore> {
  const s = new ChunkStore(join(root, `s${n++}`), 1024 * 1024);
  await s.init();
  return s;
}

test('a committed chunk is stored under its hash, in the documented layout, and counted', async () => {
  const s = await fresh();
  const bytes = Buffer.from('hello chunk');
  const id = sha(bytes);
  const w = await s.beginWrite(id, bytes.length);
  await w.append(bytes.subarray(0, 5));
  await w.append(bytes.subarray(5));
  await w.commit();
  assert.ok(existsSync(join(s.root, 'chunks', id.slice(0, 2), id)));
  assert.equal((await s.stats()).chunkCount, 1);
  assert.equal((await s.stats()).usedBytes, bytes.length);
  assert.deepEqual(readdirSync(s.tmpDir), []);
});

test('bytes that do not hash to the id are refused and leave nothing behind', async () => {
  const s = await fresh();
  const id = sha(Buffer.from('expected'));
  const w = await s.beginWrite(id, 8);
  await w.append(Buffer.from('imposter'));
  await assert.rejects(w.commit(), { code: 'SEDFS_ERR_HASH_MISMATCH' });
  assert.deepEqual(readdirSync(s.tmpDir), []);
  assert.equal(await s.has(id), false);
});

test('verify() checks length and hash before any byte is made durable, and commit() then stores the chunk', async () => {
  const s = await fresh();
  const bytes = randomBytes(200_000);
  const id = sha(bytes);
  const w = await s.beginWrite(id, bytes.length);
  w.append(bytes.subarray(0, 1000));
  assert.throws(() => w.verify(), { code: 'SEDFS_ERR_BODY_INCOMPLETE' });
  w.append(bytes.subarray(1000));
  w.verify();
  assert.equal(await s.has(id), false, 'verified is not yet committed');
  await w.commit();
  assert.equal(await s.has(id), true);
});

test('from a verified upstream a large chunk is not hashed again, a small one always is', async () => {
  const s = await fresh();
  // Large: the upstream server checked the hash before sending the last byte, so this
  // server takes the bytes as they come (a wrong id here proves no second hash ran).
  const large = randomBytes(100_000);
  const trusted = await s.beginWrite(sha(Buffer.from('another chunk')), large.length, {
    verifiedUpstream: true,
  });
  trusted.append(large);
  await trusted.commit();
  const small = Buffer.from('small chunk');
  const w = await s.beginWrite(sha(Buffer.from('not these bytes')), small.length, { verifiedUpstream: true });
  w.append(small);
  await assert.rejects(w.commit(), { code: 'SEDFS_ERR_HASH_MISMATCH' });
  const empty = await s.beginWrite(sha(Buffer.from('x')), 0, { verifiedUpstream: true });
  await assert.rejects(empty.commit(), { code: 'SEDFS_ERR_HASH_MISMATCH' });
});

test('a chunk this server holds is not replaced by unhashed bytes from a verified upstream: they are hashed, and wrong ones refused', async () => {
  const s = await fresh();
  const good = randomBytes(100_000);
  const id = sha(good);
  const first = await s.beginWrite(id, good.length);
  first.append(good);
  await first.commit();
  const garbage = randomBytes(good.length);
  const again = await s.beginWrite(id, garbage.length, { verifiedUpstream: true });
  again.append(garbage);
  await assert.rejects(again.commit(), { code: 'SEDFS_ERR_HASH_MISMATCH' });
  assert.ok(readFileSync(join(s.root, 'chunks', id.slice(0, 2), id)).equals(good), 'the good copy is kept');
  // The right bytes from upstream are fine.
  const right = await s.beginWrite(id, good.length, { verifiedUpstream: true });
  right.append(good);
  await right.commit();
  assert.equal((await s.stats()).chunkCount, 1);
});

test('an unhashed write from a verified upstream that finds the chunk stored meanwhile keeps the stored copy', async () => {
  const s = await fresh();
  const good = randomBytes(100_000);
  const id = sha(good);
  // Begun before the chunk was here: taken from upstream without a second hash.
  const unhashed = await s.beginWrite(id, good.length, { verifiedUpstream: true });
  const first = await s.beginWrite(id, good.length);
  first.append(good);
  await first.commit();
  unhashed.append(randomBytes(good.length));
  await unhashed.commit();
  assert.ok(readFileSync(join(s.root, 'chunks', id.slice(0, 2), id)).equals(good), 'the stored copy is kept');
  assert.deepEqual(readdirSync(s.tmpDir), []);
  assert.equal((await s.stats()).chunkCount, 1);
});

test('more bytes than announced, or fewer, are refused', async () => {
  const s = await fresh();
  const bytes = Buffer.from('abc');
  const w = await s.beginWrite(sha(bytes), 2);
  assert.throws(() => w.append(bytes), { code: 'SEDFS_ERR_BODY_TOO_LARGE' });
  await w.abort();
  const short = await s.beginWrite(sha(bytes), 3);
  await short.append(bytes.subarray(0, 2));
  await assert.rejects(short.commit(), { code: 'SEDFS_ERR_BODY_INCOMPLETE' });
  assert.deepEqual(readdirSync(s.tmpDir), []);
});

test('leftovers of an interrupted write are cleared at start, and stored chunks are counted', async () => {
  const dir = join(root, 'restart');
  const s = new ChunkStore(dir, 1024);
  await s.init();
  const bytes = Buffer.from('kept');
  const w = await s.beginWrite(sha(bytes), 4);
  await w.append(bytes);
  await w.commit();
  writeFileSync(join(s.tmpDir, 'half-written.part'), 'partial');
  const again = new ChunkStore(dir, 1024);
  await again.init();
  assert.deepEqual(readdirSync(again.tmpDir), []);
  assert.equal((await again.stats()).chunkCount, 1);
});

test('the inventory lists only well-formed chunks in their right place', async () => {
  const s = await fresh();
  const bytes = Buffer.from('real');
  const id = sha(bytes);
  const w = await s.beginWrite(id, 4);
  await w.append(bytes);
  await w.commit();
  const wrongPlace = sha(Buffer.from('elsewhere'));
  const otherShard = wrongPlace.startsWith('00') ? '01' : '00';
  writeFileSync(join(s.chunksDir, otherShard, wrongPlace), 'x');
  mkdirSync(join(s.chunksDir, 'zz'), { recursive: true });
  writeFileSync(join(s.chunksDir, 'zz', id), 'x');
  writeFileSync(join(s.chunksDir, id.slice(0, 2), 'notes.txt'), 'x');
  const ids: string[] = [];
  for await (const c of s.inventory()) ids.push(c);
  assert.deepEqual(ids, [id]);
});

test('ids that are not 64 lowercase hex characters are refused before touching the disk', async () => {
  const s = await fresh();
  for (const bad of ['../../etc/passwd', 'A'.repeat(64), 'a'.repeat(63), `${'a'.repeat(63)}/`, '']) {
    assert.throws(() => s.pathOf(bad), { code: 'SEDFS_ERR_BAD_CHUNK_ID' });
    await assert.rejects(s.beginWrite(bad, 1), { code: 'SEDFS_ERR_BAD_CHUNK_ID' });
  }
});

test('remove deletes a chunk and its count; a missing chunk is a clear 404', async () => {
  const s = await fresh();
  const bytes = Buffer.from('bye');
  const id = sha(bytes);
  const w = await s.beginWrite(id, 3);
  await w.append(bytes);
  await w.commit();
  await s.remove(id);
  assert.equal(await s.has(id), false);
  assert.equal((await s.stats()).chunkCount, 0);
  await assert.rejects(s.remove(id), { code: 'SEDFS_ERR_CHUNK_NOT_FOUND' });
  await assert.rejects(
    s.send(
      id,
      () => undefined,
      async () => undefined,
    ),
    { code: 'SEDFS_ERR_CHUNK_NOT_FOUND' },
  );
});

test('send hands a chunk over in blocks, each after the last was taken, bytes exactly as stored', async () => {
  const s = new ChunkStore(mkdtempSync(join(tmpdir(), 'sedfs-cs-')), 16 * 1024 * 1024);
  await s.init();
  // Bigger than two read blocks and not a multiple of the alignment.
  const bytes = randomBytes(5 * 1024 * 1024 + 17);
  const id = sha(bytes);
  const w = await s.beginWrite(id, bytes.length);
  for (let off = 0; off < bytes.length; off += 65536) await w.append(bytes.subarray(off, off + 65536));
  await w.commit();
  const pieces: Buffer[] = [];
  let announced = -1;
  let inFlight = 0;
  await s.send(
    id,
    (size) => {
      announced = size;
    },
    async (piece) => {
      inFlight++;
      assert.equal(inFlight, 1, 'one piece at a time');
      pieces.push(Buffer.from(piece)); // the store reuses its buffers: keep a copy
      await new Promise((r) => setTimeout(r, 1));
      inFlight--;
    },
  );
  assert.equal(announced, bytes.length);
  assert.ok(pieces.length >= 3);
  assert.deepEqual(Buffer.concat(pieces), bytes);
});

test('an abort during a flush keeps the buffer from the pool until the file write is done, and writes nothing after', async () => {
  const s = await fresh();
  const pool = new BufferPool(256 * 1024, 4);
  // A file whose writes finish only when the test says so, as a slow disk would.
  const writes: { bytes: Buffer; done: () => void }[] = [];
  const fh = {
    write: (buf: Buffer, off: number, len: number) =>
      new Promise((resolve) => {
        // The bytes are read from the buffer when the write happens, not when it is asked for.
        const write = {
          bytes: Buffer.alloc(0),
          done: () => {
            write.bytes = Buffer.from(buf.subarray(off, off + len));
            resolve({ bytesWritten: len, buffer: buf });
          },
        };
        writes.push(write);
      }),
    close: async () => undefined,
  } as unknown as FileHandle;
  const bytes = randomBytes(600 * 1024);
  const w = new ChunkWrite(
    s,
    sha(bytes),
    bytes.length,
    join(s.tmpDir, 'x.part'),
    s.pathOf(sha(bytes)),
    fh,
    pool,
  );
  // One piece bigger than the buffer: a flush, then the rest of the piece is to be copied in.
  const appended = w.append(bytes.subarray(0, 300 * 1024));
  assert.ok(appended, 'the full buffer is being flushed');
  assert.equal(writes.length, 1);
  const aborted = w.abort();
  await new Promise((r) => setImmediate(r));
  // Another chunk's write takes a buffer while the flush runs, and fills it.
  const other = pool.take();
  other.fill(0xee);
  (writes[0] as { done: () => void }).done();
  await assert.rejects(appended as Promise<void>, /closed/);
  await aborted;
  assert.deepEqual(writes[0]?.bytes, bytes.subarray(0, 256 * 1024), "the file got this chunk's bytes");
  assert.equal(writes.length, 1, 'nothing written after the abort');
  assert.notEqual(pool.take(), other, "the write's own buffer is back in the pool now, not before");
});

test('a read that fails mid-chunk keeps the file and read buffers until the piece still being sent is taken, then fails the send', async () => {
  const s = new ChunkStore(mkdtempSync(join(tmpdir(), 'sedfs-cs-')), 16 * 1024 * 1024);
  await s.init();
  const bytes = randomBytes(5 * 1024 * 1024);
  const id = sha(bytes);
  const w = await s.beginWrite(id, bytes.length);
  await w.append(bytes);
  await w.commit();
  const events: string[] = [];
  let take: () => void = () => undefined;
  const sent = s.send(
    id,
    () => undefined,
    () => {
      // The disk loses the rest of the chunk while the first piece is with a slow reader.
      truncateSync(s.pathOf(id), 0);
      return new Promise<void>((resolve) => {
        take = () => {
          events.push('piece taken');
          resolve();
        };
      });
    },
  );
  const ended = sent.then(
    () => events.push('send resolved'),
    (err: Error) => events.push(`send failed: ${err.message}`),
  );
  // Long enough for the next read to have found the file cut short.
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(s.sending, 1, 'the file and buffers are still held');
  take();
  await ended;
  assert.deepEqual(events, ['piece taken', `send failed: chunk ${id} ended early`]);
  assert.equal(s.sending, 0);
});

test('the 256 shard directories (and tmp/, chunks/, packs/) are made durably at the first start, so storing a chunk fsyncs only its own directory', async () => {
  const dir = join(root, 'durable');
  const synced: string[] = [];
  const watched = () =>
    new ChunkStore(dir, 1024 * 1024, {}, async (d) => {
      synced.push(d);
    });
  const s = watched();
  await s.init();
  // tmp/, chunks/ and packs/ are entries of the root, the root one of its parent; the
  // shards and the layout mark of chunks/.
  assert.deepEqual(synced, [dir, root, dir, s.chunksDir, s.chunksDir, dir]);
  assert.equal(readdirSync(s.chunksDir).filter((n) => n !== 'layout').length, 256);
  for (const text of ['first', 'second']) {
    synced.length = 0;
    const bytes = Buffer.from(text);
    const w = await s.beginWrite(sha(bytes), bytes.length);
    w.append(bytes);
    await w.commit();
    assert.deepEqual(synced, [join(s.chunksDir, sha(bytes).slice(0, 2))], 'only the rename into its shard');
  }
  // After a restart, existing directories are not made or synced again.
  synced.length = 0;
  await watched().init();
  assert.deepEqual(synced, [dir], 'only tmp/, made anew at each start');
});

test('chunks in the old two-level layout are moved up at start, including after a start that stopped midway, and stay readable', async () => {
  const dir = join(root, 'old-layout');
  const s = new ChunkStore(dir, 1024 * 1024);
  await s.init();
  const chunks = ['one', 'two', 'three'].map((t) => Buffer.from(t));
  const ids = chunks.map(sha);
  // As a server before the change left them: chunks/aa/bb/<id>, with a stray file beside one.
  ids.forEach((id, i) => {
    const old = join(s.chunksDir, id.slice(0, 2), id.slice(2, 4));
    mkdirSync(old, { recursive: true });
    writeFileSync(join(old, id), chunks[i] as Buffer);
  });
  // A server from before has no layout mark.
  rmSync(join(s.chunksDir, 'layout'));
  const strayDir = join(s.chunksDir, (ids[0] as string).slice(0, 2), (ids[0] as string).slice(2, 4));
  writeFileSync(join(strayDir, 'notes.txt'), 'x');
  // A start that stopped midway had moved the second one up already.
  const second = ids[1] as string;
  rmSync(join(s.chunksDir, second.slice(0, 2), second.slice(2, 4)), { recursive: true });
  writeFileSync(join(s.chunksDir, second.slice(0, 2), second), chunks[1] as Buffer);

  const moved: number[] = [];
  const again = new ChunkStore(dir, 1024 * 1024, { onMovedUp: (n) => moved.push(n) });
  await again.init();
  assert.deepEqual(moved, [2]);
  assert.equal((await again.stats()).chunkCount, 3);
  const listed: string[] = [];
  for await (const id of again.inventory()) listed.push(id);
  assert.deepEqual(listed, [...ids].sort());
  for (const [i, id] of ids.entries()) {
    assert.ok(existsSync(join(again.chunksDir, id.slice(0, 2), id)));
    assert.equal(await again.verify(id), true, `chunk ${i} reads back whole`);
  }
  // Emptied old folders are gone; the one with a stray file stays, with only that in it.
  for (const id of ids.slice(1))
    assert.ok(!existsSync(join(again.chunksDir, id.slice(0, 2), id.slice(2, 4))));
  assert.deepEqual(readdirSync(strayDir), ['notes.txt']);
});

test('on a file system that refuses to fsync directories (EINVAL) the store starts, stores chunk files and batches, and tells it once; an I/O error from the fsync still fails the write', async () => {
  const dir = join(root, 'nosync');
  const asked: string[] = [];
  const told: string[] = [];
  let fault = 'EINVAL';
  const refusing = async (d: string) => {
    asked.push(d);
    throw Object.assign(new Error(`fsync ${d}: ${fault}`), { code: fault });
  };
  const s = new ChunkStore(
    dir,
    1024 * 1024,
    {},
    syncDirWhereSupported((_d, code) => told.push(code), refusing),
  );
  await s.init();
  const one = Buffer.from('a chunk on a file system without directory fsync');
  const w = await s.beginWrite(sha(one), one.length);
  await w.append(one);
  await w.commit();
  assert.ok(await s.has(sha(one)));
  // A batch, stored as one pack: its rename is synced the same way.
  const batch = [Buffer.from('packed one'), Buffer.from('packed two')];
  const p = s.beginPack(
    batch.map(sha),
    batch.map((b) => b.length),
  );
  p.append(Buffer.concat(batch));
  await p.commit();
  for (const b of batch) assert.ok(await s.has(sha(b)));
  assert.ok(asked.includes(join(dir, 'packs')), "the pack's folder sync went through the store's");
  assert.deepEqual(told, ['EINVAL'], 'told once, not per chunk');
  assert.equal((await s.stats()).chunkCount, 3);

  fault = 'EIO';
  const two = Buffer.from('a chunk whose folder fsync fails for real');
  const w2 = await s.beginWrite(sha(two), two.length);
  await w2.append(two);
  await assert.rejects(w2.commit(), { code: 'EIO' });
});

test('a chunk file whose folder fsync fails is still counted and told to main: the write fails, the file stays', async () => {
  const dir = join(root, 'failing-sync');
  let failing = false;
  const s = new ChunkStore(dir, 1024 * 1024, {}, async () => {
    if (failing) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
  });
  await s.init();
  const bytes = Buffer.from('placed, then the fsync failed');
  const id = sha(bytes);
  const w = await s.beginWrite(id, bytes.length);
  await w.append(bytes);
  failing = true;
  await assert.rejects(w.commit(), { code: 'EIO' });
  assert.ok(existsSync(s.pathOf(id)), 'the file is in place');
  assert.equal((await s.stats()).chunkCount, 1);
  assert.deepEqual(s.changes.take(10).added, [id]);
});

test('two writes of one chunk at once (a retry beside the first) count it once, and removing it counts it out', async () => {
  const s = await fresh();
  const bytes = randomBytes(50_000);
  const id = sha(bytes);
  const writes = await Promise.all([s.beginWrite(id, bytes.length), s.beginWrite(id, bytes.length)]);
  for (const w of writes) await w.append(bytes);
  await Promise.all(writes.map((w) => w.commit()));
  assert.equal((await s.stats()).chunkCount, 1);
  assert.equal((await s.stats()).usedBytes, bytes.length);
  await s.remove(id);
  assert.equal((await s.stats()).chunkCount, 0);
  assert.equal((await s.stats()).usedBytes, 0);
  assert.equal(await s.has(id), false);
});

test('a shard folder that cannot be listed fails the inventory and the start, instead of hiding its chunks or marking the layout as moved up', async () => {
  const s = await fresh();
  const shard = join(s.chunksDir, '00');
  rmSync(shard, { recursive: true });
  writeFileSync(shard, 'not a folder');
  await assert.rejects(
    async () => {
      for await (const _ of s.inventory());
    },
    { code: 'ENOTDIR' },
  );
  await assert.rejects(new ChunkStore(s.root, 1024 * 1024).init(), { code: 'ENOTDIR' });
  // Nor is a data folder from before the layout marked as moved up past a shard it could not look into.
  rmSync(join(s.chunksDir, 'layout'));
  await assert.rejects(new ChunkStore(s.root, 1024 * 1024).init(), { code: 'ENOTDIR' });
  assert.ok(!existsSync(join(s.chunksDir, 'layout')), 'no layout mark');
});

test('a whole chunk in a buffer the store made is written from that buffer as it is (its padding written there); one in any other buffer is copied; both read back exactly', async () => {
  const s = new ChunkStore(join(root, `s${n++}`), 8 * 1024 * 1024);
  await s.init();
  // Not a multiple of the 4 KiB alignment, as a sealed chunk (4 MiB and its 16-byte tag).
  const size = 4 * 1024 * 1024 + 16;
  const chunk = randomBytes(size);
  const id = sha(chunk);
  const made = s.wholeChunkBuffer(size);
  assert.equal(made.length, size);
  chunk.copy(made);
  const behind = Buffer.from(made.buffer, made.byteOffset + size, 64);
  behind.fill(0xaa);
  await s.storeWhole(id, made);
  assert.deepEqual(readFileSync(join(s.root, 'chunks', id.slice(0, 2), id)), chunk);
  // With O_DIRECT the last block was padded with zeros in place, past the chunk.
  if (s.writesDirect) assert.ok(behind.every((b) => b === 0));
  else assert.ok(behind.every((b) => b === 0xaa));

  const other = randomBytes(size);
  const otherId = sha(other);
  const plain = Buffer.concat([other, Buffer.alloc(16, 0xbb)]).subarray(0, size);
  await s.storeWhole(otherId, plain);
  assert.deepEqual(readFileSync(join(s.root, 'chunks', otherId.slice(0, 2), otherId)), other);
  assert.ok(Buffer.from(plain.buffer, plain.byteOffset + size, 16).every((b) => b === 0xbb));
  assert.equal((await s.stats()).chunkCount, 2);
});

test("a whole chunk that does not hash to its id is refused from the store's buffer too, and leaves nothing behind", async () => {
  const s = new ChunkStore(join(root, `s${n++}`), 8 * 1024 * 1024);
  await s.init();
  const size = 1024 * 1024 + 5;
  const made = s.wholeChunkBuffer(size);
  randomBytes(size).copy(made);
  const id = sha(Buffer.from('something else'));
  await assert.rejects(s.storeWhole(id, made), { code: 'SEDFS_ERR_HASH_MISMATCH' });
  assert.equal(await s.has(id), false);
  assert.deepEqual(readdirSync(s.tmpDir), []);
  assert.equal((await s.stats()).chunkCount, 0);
});
