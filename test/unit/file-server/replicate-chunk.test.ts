import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { BufferPool } from '../../../src/common/buffer-pool.js';
import { createHttpApp } from '../../../src/common/http-server.js';
import { ChunkStore } from '../../../src/file-server/chunk-store.js';
import type { FileServerContext } from '../../../src/file-server/context.js';
import { replicateChunkRoute } from '../../../src/file-server/routes/replicate-chunk.js';
import type { PutChunkResponse } from '../../../src/protocol/file-server-api.js';
import { TICKET_HEADER } from '../../../src/protocol/ticket.js';
import { seededBytes } from '../../helpers/seeded.js';
import { type SmallDisk, tmpfsDisk, tmpfsUnavailable } from '../../helpers/small-disk.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('a repair copy to a file server at its reserve', { skip: tmpfsUnavailable() }, () => {
  let disk: SmallDisk;
  let store: ChunkStore;
  const app = createHttpApp(pino({ level: 'silent' }));
  /** what the source sends, by chunk id */
  const sources = new Map<string, Buffer>();

  before(async () => {
    disk = tmpfsDisk(8);
    store = new ChunkStore(join(disk.dir, 'fs'), 4 * MiB, {}, undefined, { reserveBytes: 2 * MiB });
    await store.init();
    const ctx = {
      serverId: 'target',
      store,
      log: pino({ level: 'silent' }),
      now: Date.now,
      tls: false,
      // Main's tickets, taken as checked: the copy itself is what is looked at here.
      keys: () => ({
        receiptKey: Buffer.alloc(32, 7).toString('base64url'),
        verifyTicket: () => ({ from: 'http://127.0.0.1:9', upload: 'copy-1' }),
      }),
      chunkReader: {
        get: async (url: string, _ticket: string, _size: number, into: Buffer) => {
          const bytes = sources.get(url.split('/').at(-1) as string) as Buffer;
          bytes.copy(into);
          return into.subarray(0, bytes.length);
        },
      },
      copyBuffers: new BufferPool(MiB, 2),
    } as unknown as FileServerContext;
    replicateChunkRoute(app, ctx);
    await app.ready();
  });
  after(async () => {
    await app.close();
    disk?.unmount();
  });

  const copy = (bytes: Buffer) => {
    sources.set(sha(bytes), bytes);
    return app.inject({
      method: 'POST',
      url: `/v1/chunks/${sha(bytes)}/replicate`,
      headers: { [TICKET_HEADER]: 't' },
      payload: { sourceTicket: 's', size: bytes.length },
    });
  };

  test('is taken when it already holds the chunk (main did not know), and refused for space otherwise', async () => {
    const held = seededBytes(1, MiB);
    assert.equal((await copy(held)).statusCode, 200);
    // Room above the reserve for no chunk of a MiB.
    const { bavail, bsize } = statfsSync(disk.dir);
    writeFileSync(join(disk.dir, 'filler'), Buffer.alloc(bavail * bsize - 2 * MiB - 256 * 1024));
    const fresh = await copy(seededBytes(2, MiB));
    assert.equal(fresh.statusCode, 507, fresh.body);
    const again = await copy(held);
    assert.equal(again.statusCode, 200, again.body);
    assert.equal((again.json() as PutChunkResponse).receipts[0]?.server, 'target');
    assert.deepEqual(readdirSync(store.tmpDir), []);
  });
});
