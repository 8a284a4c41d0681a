import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { generateTicketKeyPem, ticketSigner } from '../../../src/crypto/tickets.js';
import { BlobService } from '../../../src/main-server/blob-service.js';
import { Registry } from '../../../src/main-server/registry.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';
import { SedfsError } from '../../../src/protocol/errors.js';
import { commitChunks, repairerFor } from '../../helpers/chunk-map.js';
import { seededRandom } from '../../helpers/seeded.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-no-space-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (n: number, len = 32) => n.toString(16).padStart(len, '0');
const MiB = 1024 * 1024;
const clusterFull = (err: unknown) =>
  err instanceof SedfsError &&
  err.code === 'SEDFS_ERR_NO_SPACE' &&
  err.status === 507 &&
  /the cluster is out of space/.test(err.message);

/** Main's store, registry and blob service over servers reporting `free` bytes each. */
function cluster(name: string, free: number[], replicas: number) {
  const store = new SqliteStore(join(dir, `${name}.db`));
  const clock = { now: 1_000_000 };
  const lines: { msg: string; chunks?: number }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  // Plain HTTP (the repair test's targets are http servers): https is the default.
  const registry = new Registry(store, log, () => clock.now, 2000, 600_000, 'http');
  const ids = free.map((_, i) => hex(i + 1));
  for (const [i, freeBytes] of free.entries())
    store.registerServer(
      {
        id: ids[i] as string,
        url: `http://127.0.0.1:${9 + i}`,
        totalBytes: 100 * MiB,
        freeBytes,
        usedBytes: 0,
        chunkCount: 0,
        registeredAt: 1,
        lastHeartbeat: clock.now,
      },
      'k',
    );
  const signer = ticketSigner(generateTicketKeyPem());
  const blobs = new BlobService(store, registry, signer, log, () => clock.now, seededRandom(7), {
    replicas,
    ticketTtlMs: 60_000,
    uploadTtlMs: 60_000,
  });
  return { store, registry, blobs, ids, lines, clock, log };
}

test('placement never chooses a server whose reported free space is below the chunk, while others have room', () => {
  // s1 has room for nothing of 4 MiB; s2 and s3 for two each.
  const { blobs, ids, store } = cluster('skip-full', [1 * MiB, 9 * MiB, 9 * MiB], 2);
  try {
    const { uploadId } = blobs.begin();
    const chunks = [1, 2].map((n) => ({ id: hex(n, 64), size: 4 * MiB }));
    const { placements, warning } = blobs.place(uploadId, { chunks });
    for (const p of placements) assert.deepEqual(p.servers.map((s) => s.id).sort(), [ids[1], ids[2]]);
    assert.equal(warning, undefined);
    // Small chunks still go to it.
    const small = blobs.place(uploadId, { chunks: [{ id: hex(3, 64), size: 1024 }] });
    assert.equal(small.placements[0]?.servers.length, 2);
  } finally {
    store.close();
  }
});

test("what one request places counts against each server's reported space: fewer copies, with a warning, as the room runs out", () => {
  const { blobs, store } = cluster('counted', [9 * MiB, 9 * MiB, 5 * MiB], 2);
  try {
    const { uploadId } = blobs.begin();
    const chunks = [1, 2, 3, 4].map((n) => ({ id: hex(n, 64), size: 4 * MiB }));
    // 23 MiB of room holds five 4 MiB copies: two chunks get two, the third one.
    const { placements, warning } = blobs.place(uploadId, { chunks: chunks.slice(0, 3) });
    assert.deepEqual(
      placements.map((p) => p.servers.length),
      [2, 2, 1],
    );
    assert.match(warning ?? '', /have room/);
    // A fourth in the same request has nowhere to go.
    assert.throws(() => blobs.place(uploadId, { chunks }), clusterFull);
  } finally {
    store.close();
  }
});

test('with no live server that has room, placement and a new upload fail: the cluster is out of space (507)', () => {
  const { blobs, store, registry, ids, clock } = cluster('all-full', [MiB, MiB], 2);
  try {
    const { uploadId } = blobs.begin();
    assert.throws(() => blobs.place(uploadId, { chunks: [{ id: hex(1, 64), size: 4 * MiB }] }), clusterFull);
    for (const id of ids)
      registry.heartbeat(id, { totalBytes: 100 * MiB, freeBytes: 0, usedBytes: 0, chunkCount: 0 });
    clock.now += 1;
    assert.throws(() => blobs.begin(), clusterFull);
  } finally {
    store.close();
  }
});

test('repair copies only to a server with room, and says once that the cluster is out of space when none has', async () => {
  const { store, registry, ids, lines, clock, log } = cluster('repair', [8 * MiB, MiB, 8 * MiB], 2);
  const asked: string[] = [];
  const targets = await Promise.all(
    [1, 2].map(async (i) => {
      const server = createServer((req, res) => {
        asked.push(`${i}${req.url}`);
        res.statusCode = 503;
        res.end('{}');
      });
      await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      store.registerServer(
        {
          id: ids[i] as string,
          url,
          totalBytes: 100 * MiB,
          freeBytes: i === 1 ? MiB : 8 * MiB,
          usedBytes: 0,
          chunkCount: 0,
          registeredAt: 1,
          lastHeartbeat: clock.now,
        },
        'k',
      );
      return server;
    }),
  );
  const chunk = hex(5, 64);
  commitChunks(store, 2, [{ id: chunk, size: 4 * MiB, servers: [ids[0] as string] }]);
  const repairer = repairerFor(store, registry, log, clock, seededRandom(3));
  try {
    for (let i = 0; i < 5; i++) await repairer.drain(1);
    assert.ok(asked.length > 0);
    assert.ok(
      asked.every((a) => a === `2/v1/chunks/${chunk}/replicate`),
      `only the server with room: ${asked}`,
    );
    // Now the one with room is full too: nothing is asked, and that is said once.
    registry.heartbeat(ids[2] as string, {
      totalBytes: 100 * MiB,
      freeBytes: 0,
      usedBytes: 0,
      chunkCount: 0,
    });
    asked.length = 0;
    for (let i = 0; i < 3; i++) await repairer.drain(1);
    assert.deepEqual(asked, []);
    assert.equal(lines.filter((l) => /the cluster is out of space/.test(l.msg)).length, 1);
  } finally {
    await repairer.stop();
    for (const t of targets) t.close();
    store.close();
  }
});

test('repair counts what one pass sends a server against its room: a page of copies does not overfill it', async () => {
  const { store, registry, ids, clock, log } = cluster('repair-room', [8 * MiB, 8 * MiB], 2);
  const asked: string[] = [];
  const server = createServer((req, res) => {
    asked.push(req.url ?? '');
    res.statusCode = 503;
    res.end('{}');
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  // Room for one chunk of 4 MiB on the only server that could take copies.
  store.registerServer(
    {
      id: ids[1] as string,
      url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
      totalBytes: 100 * MiB,
      freeBytes: 5 * MiB,
      usedBytes: 0,
      chunkCount: 0,
      registeredAt: 1,
      lastHeartbeat: clock.now,
    },
    'k',
  );
  commitChunks(
    store,
    2,
    [5, 6, 7].map((n) => ({ id: hex(n, 64), size: 4 * MiB, servers: [ids[0] as string] })),
  );
  const repairer = repairerFor(store, registry, log, clock, seededRandom(4));
  try {
    await repairer.drain(1);
    assert.equal(asked.length, 1, `copies ordered: ${asked}`);
  } finally {
    await repairer.stop();
    server.close();
    store.close();
  }
});
