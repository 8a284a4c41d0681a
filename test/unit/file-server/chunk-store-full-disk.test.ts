import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ChunkStore, UNKNOWN_FREE_BYTES } from '../../../src/file-server/chunk-store.js';
import { SedfsError } from '../../../src/protocol/errors.js';
import { seededBytes } from '../../helpers/seeded.js';
import {
  loopExt4Disk,
  loopExt4Unavailable,
  type SmallDisk,
  tmpfsDisk,
  tmpfsUnavailable,
} from '../../helpers/small-disk.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function put(store: ChunkStore, bytes: Buffer): Promise<string> {
  const id = sha(bytes);
  const w = await store.beginWrite(id, bytes.length);
  try {
    await w.append(bytes);
    await w.commit();
  } catch (err) {
    await w.abort();
    throw err;
  }
  return id;
}

async function read(store: ChunkStore, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  await store.send(
    id,
    () => undefined,
    async (piece) => {
      parts.push(Buffer.from(piece));
    },
  );
  return Buffer.concat(parts);
}

const isNoSpace = (err: unknown) =>
  err instanceof SedfsError && err.code === 'SEDFS_ERR_NO_SPACE' && err.status === 507 && err.retryable;

/**
 * Fills a real small file system with chunks of about `chunkBytes` until a write fails,
 * and checks how it failed and what it left. Chunks of 256 KiB and more are written with
 * O_DIRECT where the file system takes it (ext4 does; tmpfs does since Linux 6.6), smaller
 * ones through the page cache.
 */
function fillingUp(
  name: string,
  unavailable: string | undefined,
  mount: () => SmallDisk,
  chunkBytes: number,
  direct: boolean,
) {
  describe(name, { skip: unavailable }, () => {
    let disk: SmallDisk;
    let store: ChunkStore;
    before(async () => {
      disk = mount();
      store = new ChunkStore(join(disk.dir, 'fs'), 4 * MiB);
      await store.init();
      if (direct) assert.ok(store.writesDirect, 'O_DIRECT is used on this file system');
    });
    after(() => disk?.unmount());

    const stored: { id: string; bytes: Buffer }[] = [];
    test('a chunk that does not fit fails as SEDFS_ERR_NO_SPACE (507, retryable) and leaves no temporary file', async () => {
      let failure: unknown;
      for (let i = 0; i < 1024 && failure === undefined; i++) {
        const bytes = seededBytes(i + 1, chunkBytes + 4096 * (i % 8));
        try {
          stored.push({ id: await put(store, bytes), bytes });
        } catch (err) {
          failure = err;
        }
      }
      assert.ok(stored.length > 0, 'some chunks fit first');
      assert.ok(isNoSpace(failure), `failed with ${(failure as Error)?.stack}`);
      assert.deepEqual(readdirSync(store.tmpDir), []);
    });

    test('a batch that does not fit fails as SEDFS_ERR_NO_SPACE, leaves no temporary pack, and what was stored before still reads back whole', async () => {
      // The failed chunk above left its room free again: batches fill it.
      let failure: unknown;
      for (let i = 0; i < 64 && failure === undefined; i++) {
        const chunks = [seededBytes(900 + 2 * i, 200 * 1024), seededBytes(901 + 2 * i, 200 * 1024)];
        const pack = store.beginPack(
          chunks.map(sha),
          chunks.map((c) => c.length),
        );
        for (const c of chunks) pack.append(c);
        try {
          await pack.commit();
          stored.push(...chunks.map((bytes) => ({ id: sha(bytes), bytes })));
        } catch (err) {
          failure = err;
        }
      }
      assert.ok(isNoSpace(failure), `failed with ${(failure as Error)?.stack}`);
      assert.deepEqual(readdirSync(store.tmpDir), []);
      for (const { id, bytes } of stored) assert.deepEqual(await read(store, id), bytes);
      assert.equal((await store.stats()).chunkCount, stored.length);
    });
  });
}

fillingUp(
  'a chunk store on a full tmpfs (small chunks: buffered writes)',
  tmpfsUnavailable(),
  () => tmpfsDisk(8),
  100 * 1024,
  false,
);
fillingUp(
  'a chunk store on a full ext4 (large chunks: O_DIRECT writes)',
  loopExt4Unavailable(),
  () => loopExt4Disk(12),
  MiB,
  true,
);

describe('a chunk store with a free-space reserve', { skip: tmpfsUnavailable() }, () => {
  let disk: SmallDisk;
  before(() => {
    disk = tmpfsDisk(8);
  });
  after(() => disk?.unmount());

  test('refuses a chunk that would leave less than the reserve free, before reading any of it', async () => {
    const store = new ChunkStore(join(disk.dir, 'fs'), 4 * MiB, {}, undefined, { reserveBytes: 6 * MiB });
    await store.init();
    await put(store, seededBytes(1, MiB));
    // 8 MiB - 1 MiB stored leaves ~7 MiB: another MiB would leave less than 6.
    const bytes = seededBytes(2, 1.5 * MiB);
    await assert.rejects(store.beginWrite(sha(bytes), bytes.length), isNoSpace);
    await assert.rejects(store.ensureRoom(bytes.length), isNoSpace);
    assert.deepEqual(readdirSync(store.tmpDir), []);
    // What it reports free to main is what it would still take: free space less the reserve.
    const { freeBytes } = await store.stats();
    assert.ok(freeBytes < 1.5 * MiB && freeBytes >= 0, `freeBytes ${freeBytes}`);
  });
});

describe('a chunk store at its reserve', { skip: tmpfsUnavailable() }, () => {
  let disk: SmallDisk;
  before(() => {
    disk = tmpfsDisk(8);
  });
  after(() => disk?.unmount());

  test('takes again a chunk it holds (a put or repair copy of it needs no room), and counts only the chunks it does not hold', async () => {
    const store = new ChunkStore(join(disk.dir, 'fs'), 4 * MiB, {}, undefined, {
      reserveBytes: 6.5 * MiB,
    });
    await store.init();
    const held = seededBytes(3, MiB);
    const small = [seededBytes(4, 100 * 1024), seededBytes(5, 100 * 1024)];
    await put(store, held);
    const pack = store.beginPack(
      small.map(sha),
      small.map((c) => c.length),
    );
    for (const c of small) pack.append(c);
    await pack.commit();
    // ~6.8 MiB free: less than a MiB above the reserve.
    const fresh = seededBytes(6, MiB);
    await assert.rejects(store.beginWrite(sha(fresh), fresh.length), isNoSpace);
    await assert.rejects(store.ensureRoomFor([{ id: sha(fresh), size: fresh.length }]), isNoSpace);
    assert.equal(await put(store, held), sha(held));
    assert.deepEqual(await read(store, sha(held)), held);
    await store.ensureRoomFor([...small, held].map((c) => ({ id: sha(c), size: c.length })));
    await assert.rejects(
      store.ensureRoomFor([small[0] as Buffer, fresh].map((c) => ({ id: sha(c), size: c.length }))),
      isNoSpace,
    );
    assert.equal((await store.stats()).chunkCount, 3);
  });
});

describe('a chunk store whose statfs fails (some network shares)', { skip: tmpfsUnavailable() }, () => {
  let disk: SmallDisk;
  before(() => {
    disk = tmpfsDisk(8);
  });
  after(() => disk?.unmount());

  test('keeps taking chunks until a write finds the disk full, says once that free space is unknown, and reports none left only until a chunk is removed', async () => {
    const told: unknown[] = [];
    const store = new ChunkStore(
      join(disk.dir, 'fs'),
      4 * MiB,
      { onFreeSpaceUnknown: (err) => told.push(err) },
      undefined,
      {
        reserveBytes: 2 * MiB,
        statfs: async () => {
          throw Object.assign(new Error('ENOSYS: function not implemented, statfs'), { code: 'ENOSYS' });
        },
      },
    );
    await store.init();
    assert.equal((await store.stats()).freeBytes, UNKNOWN_FREE_BYTES);
    assert.equal((await store.stats()).freeUnknown, true);
    const stored: string[] = [];
    let failure: unknown;
    // Past the 2 MiB reserve, which cannot be kept without knowing the free space.
    for (let i = 0; i < 64 && failure === undefined; i++)
      await put(store, seededBytes(700 + i, 512 * 1024)).then(
        (id) => stored.push(id),
        (err: unknown) => {
          failure = err;
        },
      );
    assert.ok(stored.length >= 12, `${stored.length} chunks stored`);
    assert.ok(isNoSpace(failure), `failed with ${(failure as Error)?.stack}`);
    assert.deepEqual(readdirSync(store.tmpDir), []);
    assert.equal((await store.stats()).freeBytes, 0);
    await store.remove(stored[0] as string);
    assert.ok((await store.stats()).freeBytes > 0);
    assert.equal(told.length, 1, 'told once');
    assert.equal((told[0] as NodeJS.ErrnoException).code, 'ENOSYS');
  });
});
