import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { createAgent } from '../../../src/common/http-client.js';
import type { Logger } from '../../../src/common/logger.js';
import { generateTicketKeyPem, ticketSigner } from '../../../src/crypto/tickets.js';
import { ChunkDeleter } from '../../../src/main-server/chunk-deleter.js';
import { Registry } from '../../../src/main-server/registry.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';
import { commitChunks, registerServers, TEST_STATS } from '../../helpers/chunk-map.js';
import { waitFor } from '../../helpers/cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-deleter-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (n: number, len = 32) => n.toString(16).padStart(len, '0');
const stats = { totalBytes: 100, freeBytes: 50, usedBytes: 10, chunkCount: 0 };

/** A file server stand-in that answers every DELETE with `status` and notes the chunk ids. */
async function fakeFileServer(status: number): Promise<{ server: Server; url: string; deleted: string[] }> {
  const deleted: string[] = [];
  const server = createServer((req, res) => {
    if (req.method === 'DELETE') deleted.push((req.url ?? '').split('/').pop() as string);
    res.statusCode = status;
    res.end('{}');
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, deleted };
}

/** A store, a registry (file servers over plain HTTP) and a clock the test moves. */
function mainOn(name: string) {
  const store = new SqliteStore(join(dir, `${name}.db`));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  return { store, clock, log, registry: new Registry(store, log, () => clock.now, 2000, 600_000, 'http') };
}

/** A deleter on the test's clock, with a ticket key of its own. */
function deleterFor(
  store: SqliteStore,
  registry: Registry,
  log: Logger,
  clock: { now: number },
): ChunkDeleter {
  return new ChunkDeleter(
    store,
    registry,
    ticketSigner(generateTicketKeyPem()),
    createAgent(),
    log,
    () => clock.now,
  );
}

test('orders for servers that are down, removed or refusing do not block the queue: an order for a live server is still carried out', async () => {
  const { store, clock, log, registry } = mainOn('blocked');
  const good = await fakeFileServer(200);
  const refusing = await fakeFileServer(500);
  const [down, removed, refuser, live] = [hex(1), hex(2), hex(3), hex(4)];
  const register = (id: string, url: string, lastHeartbeat: number) =>
    store.registerServer({ id, url, ...stats, registeredAt: 1, lastHeartbeat }, 'k');
  register(down, 'http://127.0.0.1:9', 1); // silent for long: down
  register(removed, 'http://127.0.0.1:9', clock.now);
  store.markRemoved(removed, clock.now);
  register(refuser, refusing.url, clock.now);
  register(live, good.url, clock.now);

  // The oldest 900 orders are for the down, the removed and the refusing server, more
  // than a pass's page each; the live server's one order came last.
  const queue = store.db.prepare(
    'INSERT INTO chunk_deletions (chunk_id, server_id, queued_at) VALUES (?, ?, ?)',
  );
  let n = 0;
  for (const server of [down, removed, refuser])
    for (let i = 0; i < 300; i++, n++) queue.run(hex(n, 64), server, n);
  queue.run(hex(99_999, 64), live, n);

  const deleter = deleterFor(store, registry, log, clock);
  try {
    deleter.kick();
    await waitFor(
      'the live server to get its delete order',
      () => good.deleted.includes(hex(99_999, 64)),
      5000,
    );
    await waitFor('the order to be done', () => {
      const left = store.db.prepare('SELECT count(*) FROM chunk_deletions WHERE server_id = ?').pluck();
      return left.get(live) === 0;
    });
    const count = (server: string) =>
      store.db.prepare('SELECT count(*) FROM chunk_deletions WHERE server_id = ?').pluck().get(server);
    assert.equal(count(removed), 0, 'orders for a removed server are dropped');
    assert.equal(count(down), 300, 'orders for a server that is down wait for it');
    assert.equal(count(refuser), 300, 'refused orders stay queued, to be tried again');
    assert.ok(refusing.deleted.length > 0, 'the refusing server was asked');
    // Refused orders wait their turn; after the wait they are tried again.
    const asked = refusing.deleted.length;
    clock.now += 10_000;
    store.heartbeat(refuser, stats, clock.now);
    deleter.kick();
    await waitFor('the refused orders to be tried again', () => refusing.deleted.length > asked, 5000);
  } finally {
    await deleter.stop();
    good.server.close();
    refusing.server.close();
    store.close();
  }
});

test('a delete order left from an expired upload does not delete a copy that repair made there meanwhile', async () => {
  const { store, clock, log, registry } = mainOn('stale');
  const holder = await fakeFileServer(200);
  const target = await fakeFileServer(200);
  const [h, t] = [hex(1), hex(2)];
  registerServers(
    store,
    [
      { id: h, url: holder.url },
      { id: t, url: target.url, lastHeartbeat: 1 },
    ],
    clock.now,
  );
  const chunk = hex(7, 64);
  commitChunks(store, 2, [{ id: chunk, size: 1, servers: [h] }]);
  // Someone who knows the chunk's id places it on the target, which is down, and never
  // writes: when the upload expires, its order for the target waits for it.
  store.createUpload({ id: hex(77), replicas: 1, createdAt: clock.now, expiresAt: clock.now + 1 });
  store.recordPlacements(hex(77), [{ chunkId: chunk, serverIds: [t] }]);
  clock.now += 10;
  assert.equal(store.expireUploads(clock.now), 1);
  // The target is back and repair copies the chunk there.
  store.heartbeat(t, TEST_STATS, clock.now);
  store.addReplicas([{ chunkId: chunk, serverId: t }], clock.now);
  const deleter = deleterFor(store, registry, log, clock);
  try {
    deleter.kick();
    await waitFor('the order to be settled', () => store.pendingDeletions([t], 10, clock.now).length === 0);
    assert.deepEqual(target.deleted, [], 'no delete order reached the copy');
    assert.deepEqual(store.replicasOf([chunk]).get(chunk)?.sort(), [h, t].sort());
  } finally {
    await deleter.stop();
    holder.server.close();
    target.server.close();
    store.close();
  }
});

// main's orders waited out undici's 60 s on a hung server (its kernel takes the
// connection and the request, the process answers nothing), holding up the pass.
test('a delete order to a server that hangs fails once its health check goes unanswered too, and waits its turn to be tried again', {
  timeout: 40_000,
}, async () => {
  const { store, clock, registry } = mainOn('hung');
  const lines: { msg: string; reason?: string }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const sockets: Socket[] = [];
  const hung = createNetServer((s) => sockets.push(s));
  await new Promise<void>((res) => hung.listen(0, '127.0.0.1', res));
  const id = hex(5);
  registerServers(
    store,
    [{ id, url: `http://127.0.0.1:${(hung.address() as AddressInfo).port}` }],
    clock.now,
  );
  store.db
    .prepare('INSERT INTO chunk_deletions (chunk_id, server_id, queued_at) VALUES (?, ?, ?)')
    .run(hex(6, 64), id, 1);
  const deleter = deleterFor(store, registry, log, clock);
  try {
    deleter.kick();
    await waitFor('the order to fail', () => lines.some((l) => l.msg === 'chunk delete failed'), 25_000);
    assert.match(
      lines.find((l) => l.msg === 'chunk delete failed')?.reason ?? '',
      /has not answered for 10 s, nor answered a health check/,
    );
    assert.equal(store.pendingDeletions([id], 10, clock.now).length, 0, 'deferred');
    assert.equal(store.pendingDeletions([id], 10, clock.now + 3_600_000).length, 1, 'still queued');
  } finally {
    await deleter.stop();
    for (const s of sockets) s.destroy();
    hung.close();
    store.close();
  }
});
