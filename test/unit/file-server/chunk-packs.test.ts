import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, test } from 'node:test';
import { ChunkStore } from '../../../src/file-server/chunk-store.js';

const root = mkdtempSync(join(tmpdir(), 'sedfs-packs-'));
after(() => rmSync(root, { recursive: true, force: true }));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let n = 0;

async function open(dir: string, onBadPack?: (name: string, why: string) => void): Promise<ChunkStore> {
  const s = new ChunkStore(dir, 1024 * 1024, onBadPack ? { onBadPack } : {});
  await s.init();
  return s;
}

function chunks(count: number, size = 5000): { id: string; bytes: Buffer }[] {
  return Array.from({ length: count }, () => {
    const bytes = randomBytes(size);
    return { id: sha(bytes), bytes };
  });
}

/** Starts receiving `batch` as one pack. */
function begin(s: ChunkStore, batch: { id: string; bytes: Buffer }[]) {
  return s.beginPack(
    batch.map((c) => c.id),
    batch.map((c) => c.bytes.length),
  );
}

/** Sends a batch's bytes in awkward pieces, as the network would. */
async function storeBatch(s: ChunkStore, batch: { id: string; bytes: Buffer }[]): Promise<void> {
  const w = begin(s, batch);
  const body = Buffer.concat(batch.map((c) => c.bytes));
  for (let off = 0; off < body.length; off += 1500) w.append(body.subarray(off, off + 1500));
  await w.commit();
}

async function read(s: ChunkStore, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  await s.send(
    id,
    () => undefined,
    async (piece) => {
      parts.push(Buffer.from(piece));
    },
  );
  return Buffer.concat(parts);
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const packFiles = (s: ChunkStore) => readdirSync(join(s.root, 'packs')).filter((f) => f.endsWith('.pack'));

/** Flips one byte of `chunk` where it sits in the pack `file`, as a failing disk would. */
function flipByteOf(chunk: Buffer, file: string, at: number): void {
  const bytes = readFileSync(file);
  const where = bytes.indexOf(chunk) + at;
  bytes[where] = (bytes[where] as number) ^ 0xff;
  writeFileSync(file, bytes);
}

test('a batch is stored as one pack file: every chunk reads back exactly, is counted and listed', async () => {
  const s = await open(join(root, `s${n++}`));
  const batch = chunks(20);
  await storeBatch(s, batch);
  assert.equal(packFiles(s).length, 1);
  assert.deepEqual(readdirSync(s.tmpDir), []);
  for (const c of batch) assert.deepEqual(await read(s, c.id), c.bytes);
  assert.equal((await s.stats()).chunkCount, 20);
  assert.equal((await s.stats()).usedBytes, 20 * 5000);
  assert.equal(await s.has(batch[3]?.id as string), true);
});

test('the inventory merges packed chunks and chunk files in ascending order, each id once', async () => {
  const s = await open(join(root, `s${n++}`));
  const batch = chunks(30);
  await storeBatch(s, batch);
  const single = chunks(5);
  for (const c of single) {
    const w = await s.beginWrite(c.id, c.bytes.length);
    await w.append(c.bytes);
    await w.commit();
  }
  const ids = await all(s.inventory());
  assert.deepEqual(ids, [...batch, ...single].map((c) => c.id).sort());
});

test('a chunk that does not hash to its id fails the batch at that chunk, and nothing of the batch is stored', async () => {
  const s = await open(join(root, `s${n++}`));
  const batch = chunks(3);
  const w = begin(s, batch);
  w.append(batch[0]?.bytes as Buffer);
  const wrong = Buffer.from(batch[1]?.bytes as Buffer);
  wrong[10] = (wrong[10] as number) ^ 1;
  assert.throws(() => w.append(wrong), { code: 'SEDFS_ERR_HASH_MISMATCH' });
  assert.equal(await s.has(batch[0]?.id as string), false);
  assert.deepEqual(packFiles(s), []);
});

test('a batch that stops short or runs long is refused', async () => {
  const s = await open(join(root, `s${n++}`));
  const batch = chunks(2);
  const short = begin(s, batch);
  short.append(batch[0]?.bytes as Buffer);
  await assert.rejects(short.commit(), { code: 'SEDFS_ERR_BODY_INCOMPLETE' });
  const long = s.beginPack([batch[0]?.id as string], [5000]);
  assert.throws(() => long.append(Buffer.concat([batch[0]?.bytes as Buffer, Buffer.from('x')])), {
    code: 'SEDFS_ERR_BODY_TOO_LARGE',
  });
  assert.deepEqual(packFiles(s), []);
});

test('packed chunks survive a restart; removed ones stay removed; a pack is deleted with its last chunk', async () => {
  const dir = join(root, `s${n++}`);
  let s = await open(dir);
  const batch = chunks(4);
  await storeBatch(s, batch);
  await s.remove(batch[0]?.id as string);
  await s.remove(batch[1]?.id as string);
  await assert.rejects(read(s, batch[0]?.id as string), { code: 'SEDFS_ERR_CHUNK_NOT_FOUND' });
  await assert.rejects(s.remove(batch[0]?.id as string), { code: 'SEDFS_ERR_CHUNK_NOT_FOUND' });

  s = await open(dir);
  assert.equal((await s.stats()).chunkCount, 2);
  assert.deepEqual(await all(s.inventory()), [batch[2]?.id, batch[3]?.id].sort());
  assert.deepEqual(await read(s, batch[3]?.id as string), batch[3]?.bytes);

  await s.remove(batch[2]?.id as string);
  await s.remove(batch[3]?.id as string);
  // Removing the third made the pack mostly dead: wait for that compaction to settle.
  await s.packsCompacted();
  assert.deepEqual(readdirSync(join(dir, 'packs')), [], 'the pack and its .dead file are gone');
  assert.equal((await s.stats()).chunkCount, 0);
});

test('a chunk is live in one place: a pack leaves out a chunk held as a file, and a file write retires a packed copy', async () => {
  const dir = join(root, `s${n++}`);
  const s = await open(dir);
  const [a, b] = chunks(2) as [{ id: string; bytes: Buffer }, { id: string; bytes: Buffer }];
  const w = await s.beginWrite(a.id, a.bytes.length);
  await w.append(a.bytes);
  await w.commit();
  await storeBatch(s, [a, b]);
  assert.equal((await s.stats()).chunkCount, 2);

  // b is packed; writing it as a file makes the packed copy dead, and the pack goes (a was left out of it).
  const wb = await s.beginWrite(b.id, b.bytes.length);
  await wb.append(b.bytes);
  await wb.commit();
  assert.deepEqual(packFiles(s), []);
  assert.equal((await s.stats()).chunkCount, 2);

  const again = await open(dir);
  assert.equal((await again.stats()).chunkCount, 2);
  assert.deepEqual(await all(again.inventory()), [a.id, b.id].sort());
});

test('a chunk file whose packed copy a crash left live retires that copy at start: counted, listed and removed once', async () => {
  const dir = join(root, `s${n++}`);
  const s = await open(dir);
  const [b, c] = chunks(2) as [{ id: string; bytes: Buffer }, { id: string; bytes: Buffer }];
  await storeBatch(s, [b, c]);
  const wb = await s.beginWrite(b.id, b.bytes.length);
  await wb.append(b.bytes);
  await wb.commit();
  // The crash: the pack's note that b is dead there never reached the disk.
  const deadLists = readdirSync(join(dir, 'packs')).filter((f) => f.endsWith('.dead'));
  assert.equal(deadLists.length, 1);
  rmSync(join(dir, 'packs', deadLists[0] as string));

  const again = await open(dir);
  assert.equal((await again.stats()).chunkCount, 2);
  assert.deepEqual(await all(again.inventory()), [b.id, c.id].sort());
  // Retired for good: noted dead again, so the next start agrees without the chunk file.
  assert.match(readFileSync(join(dir, 'packs', deadLists[0] as string), 'latin1'), new RegExp(b.id));
  await again.remove(b.id);
  const third = await open(dir);
  assert.equal(await third.has(b.id), false);
  assert.equal((await third.stats()).chunkCount, 1);
  assert.deepEqual(await all(third.inventory()), [c.id]);
});

test('two packs holding the same chunk count it once, before and after a restart, and removing it removes it', async () => {
  const dir = join(root, `s${n++}`);
  const s = await open(dir);
  const batch = chunks(3);
  await storeBatch(s, batch);
  await storeBatch(s, [batch[1] as { id: string; bytes: Buffer }, ...chunks(1)]);
  assert.equal((await s.stats()).chunkCount, 4);
  const again = await open(dir);
  assert.equal((await again.stats()).chunkCount, 4);
  await again.remove(batch[1]?.id as string);
  const third = await open(dir);
  assert.equal(await third.has(batch[1]?.id as string), false);
  assert.equal((await third.stats()).chunkCount, 3);
});

test('a pack whose folder fsync fails is still listed, counted and told to main: the batch fails, the pack stays', async () => {
  const dir = join(root, `s${n++}`);
  let failing = false;
  const s = new ChunkStore(dir, 1024 * 1024, {}, async () => {
    if (failing) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
  });
  await s.init();
  const batch = chunks(3);
  failing = true;
  await assert.rejects(storeBatch(s, batch), { code: 'EIO' });
  failing = false;
  assert.equal(packFiles(s).length, 1, 'the pack is in place');
  for (const c of batch) assert.deepEqual(await read(s, c.id), c.bytes);
  assert.equal((await s.stats()).chunkCount, 3);
  assert.deepEqual(s.changes.take(10).added.sort(), batch.map((c) => c.id).sort());
});

test('the scrub finds a flipped byte in a packed chunk: only that chunk is quarantined, its neighbours still read', async () => {
  const dir = join(root, `s${n++}`);
  const s = await open(dir);
  const batch = chunks(3);
  await storeBatch(s, batch);
  const file = join(dir, 'packs', packFiles(s)[0] as string);
  flipByteOf(batch[1]?.bytes as Buffer, file, 7);

  assert.equal(await s.verify(batch[0]?.id as string), true);
  assert.equal(await s.verify(batch[1]?.id as string), false);
  assert.equal(await s.has(batch[1]?.id as string), false);
  const quarantined = readdirSync(join(dir, 'quarantine'));
  assert.equal(quarantined.length, 1);
  assert.ok(quarantined[0]?.startsWith(batch[1]?.id as string));
  assert.deepEqual(await read(s, batch[2]?.id as string), batch[2]?.bytes);
  assert.equal((await s.stats()).chunkCount, 2);
});

test('a pack cut short on disk is moved to quarantine at start, reported, and the other packs load', async () => {
  const dir = join(root, `s${n++}`);
  const s = await open(dir);
  await storeBatch(s, chunks(2));
  const good = chunks(2);
  await storeBatch(s, good);
  const bad = packFiles(s).find((f) => {
    const text = readFileSync(join(dir, 'packs', f));
    return !text.includes(good[0]?.bytes as Buffer);
  }) as string;
  truncateSync(join(dir, 'packs', bad), 100);

  const reported: string[] = [];
  const again = await open(dir, (name) => reported.push(name));
  assert.deepEqual(reported, [bad]);
  assert.equal(existsSync(join(dir, 'packs', bad)), false);
  assert.equal(readdirSync(join(dir, 'quarantine')).length, 1);
  assert.equal((await again.stats()).chunkCount, 2);
  assert.deepEqual(await read(again, good[1]?.id as string), good[1]?.bytes);
});

test('a pack left unfinished in tmp/ by a crash is cleared at start and never seen', async () => {
  const dir = join(root, `s${n++}`);
  const s = await open(dir);
  writeFileSync(join(s.tmpDir, 'abc.pack.part'), 'partial');
  const again = await open(dir);
  assert.deepEqual(readdirSync(again.tmpDir), []);
  assert.equal((await again.stats()).chunkCount, 0);
});

test('a .dead list whose pack is gone (deleted just before a crash) is cleared at start', async () => {
  const dir = join(root, `s${n++}`);
  const s = await open(dir);
  await storeBatch(s, chunks(2));
  writeFileSync(join(dir, 'packs', '0123456789abcdef.dead'), `${'a'.repeat(64)}\n`);
  await open(dir);
  assert.deepEqual(
    readdirSync(join(dir, 'packs')).filter((f) => f.endsWith('.dead')),
    [],
    'only the orphan existed, and it is gone',
  );
  assert.equal(packFiles(s).length, 1);
});

test('a batch that names a chunk twice stores and counts it once', async () => {
  const s = await open(join(root, `s${n++}`));
  const [a, b] = chunks(2) as [{ id: string; bytes: Buffer }, { id: string; bytes: Buffer }];
  await storeBatch(s, [a, b, a]);
  assert.equal((await s.stats()).chunkCount, 2);
  assert.deepEqual(await all(s.inventory()), [a.id, b.id].sort());
  await s.remove(a.id);
  assert.equal(await s.has(a.id), false);
});

/** Opens the store at `dir` again and checks it holds exactly `held`, each once. */
async function reopenHolding(dir: string, held: { id: string }[]): Promise<ChunkStore> {
  const again = await open(dir);
  assert.equal((await again.stats()).chunkCount, held.length);
  assert.deepEqual(await all(again.inventory()), held.map((c) => c.id).sort());
  return again;
}

test('a pack more than half dead is compacted: the live chunks move to a new, smaller pack and the old one goes', async () => {
  const dir = join(root, `s${n++}`);
  const s = await open(dir);
  const batch = chunks(10);
  await storeBatch(s, batch);
  const [before] = packFiles(s);
  for (const c of batch.slice(0, 6)) await s.remove(c.id);
  await s.packsCompacted();

  const after = packFiles(s);
  assert.equal(after.length, 1);
  assert.notEqual(after[0], before);
  assert.deepEqual(readdirSync(join(dir, 'packs')), after, 'no .dead file is left');
  const packBytes = readFileSync(join(dir, 'packs', after[0] as string)).length;
  assert.ok(
    packBytes < 4 * 5000 + 4 * 36 + 100,
    `the new pack holds only the live chunks (${packBytes} bytes)`,
  );
  for (const c of batch.slice(6)) assert.deepEqual(await read(s, c.id), c.bytes);
  for (const c of batch.slice(0, 6))
    await assert.rejects(read(s, c.id), { code: 'SEDFS_ERR_CHUNK_NOT_FOUND' });

  await reopenHolding(dir, batch.slice(6));
});

test('a crash between writing the compacted pack and deleting the old one loses nothing and brings back nothing', async () => {
  const dir = join(root, `s${n++}`);
  const s = await open(dir);
  const batch = chunks(10);
  await storeBatch(s, batch);
  const old = packFiles(s)[0] as string;
  const oldBytes = readFileSync(join(dir, 'packs', old));
  for (const c of batch.slice(0, 6)) await s.remove(c.id);
  const oldDead = readFileSync(join(dir, 'packs', old.replace(/\.pack$/, '.dead')));
  await s.packsCompacted();
  // As if the process stopped before the old pack (and its list of the dead) was deleted.
  writeFileSync(join(dir, 'packs', old), oldBytes);
  writeFileSync(join(dir, 'packs', old.replace(/\.pack$/, '.dead')), oldDead);
  assert.equal(packFiles(s).length, 2);

  const again = await reopenHolding(dir, batch.slice(6));
  for (const c of batch.slice(6)) assert.deepEqual(await read(again, c.id), c.bytes);
  await again.packsCompacted();
  assert.equal(packFiles(again).length, 1, 'the duplicate pack is gone again');
  for (const c of batch.slice(6)) assert.deepEqual(await read(again, c.id), c.bytes);
});

test('chunks removed while their pack is being compacted stay removed, now and after a restart', async () => {
  const dir = join(root, `s${n++}`);
  const s = await open(dir);
  const batch = chunks(10);
  await storeBatch(s, batch);
  for (const c of batch.slice(0, 6)) await s.remove(c.id);
  // The compaction has been asked for and runs while these go.
  await Promise.all(batch.slice(6, 9).map((c) => s.remove(c.id)));
  await s.packsCompacted();
  assert.deepEqual(await all(s.inventory()), [batch[9]?.id]);
  assert.deepEqual(await read(s, batch[9]?.id as string), batch[9]?.bytes);

  const again = await open(dir);
  assert.deepEqual(await all(again.inventory()), [batch[9]?.id]);
  assert.equal((await again.stats()).chunkCount, 1);
});

test('a compaction that finds a chunk not matching its id leaves the pack as it was and says why', async () => {
  const dir = join(root, `s${n++}`);
  const failures: string[] = [];
  const s = new ChunkStore(dir, 1024 * 1024, {
    onCompactFailed: (pack, why) => failures.push(`${pack}: ${why}`),
  });
  await s.init();
  const batch = chunks(10);
  await storeBatch(s, batch);
  const file = join(dir, 'packs', packFiles(s)[0] as string);
  flipByteOf(batch[8]?.bytes as Buffer, file, 3);
  for (const c of batch.slice(0, 6)) await s.remove(c.id);
  await s.packsCompacted();

  assert.ok(failures.length >= 1);
  assert.match(failures[0] as string, new RegExp(`chunk ${batch[8]?.id} in it no longer matches its id`));
  assert.deepEqual(packFiles(s), [basename(file)]);
  assert.deepEqual(await read(s, batch[9]?.id as string), batch[9]?.bytes);
});
