import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { createAgent } from '../../../src/common/http-client.js';
import type { Logger } from '../../../src/common/logger.js';
import { sha256Hex } from '../../../src/crypto/hash.js';
import { receiptFor } from '../../../src/crypto/receipts.js';
import { generateTicketKeyPem, ticketSigner } from '../../../src/crypto/tickets.js';
import { Registry } from '../../../src/main-server/registry.js';
import { Repairer } from '../../../src/main-server/repairer.js';
import { ReplicaProver } from '../../../src/main-server/replica-prover.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';
import { commitChunks, registerServers } from '../../helpers/chunk-map.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-repairer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (n: number, len = 32) => n.toString(16).padStart(len, '0');
const stats = { totalBytes: 100, freeBytes: 50, usedBytes: 10, chunkCount: 0 };

/** A repairer copying one chunk at a time, unpaced, two chunks a page, on the test's clock. */
function repairerFor(
  store: SqliteStore,
  registry: Registry,
  log: Logger,
  clock: { now: number },
  random: () => number = Math.random,
): Repairer {
  const signer = ticketSigner(generateTicketKeyPem());
  const agent = createAgent();
  return new Repairer(
    store,
    registry,
    signer,
    agent,
    log,
    () => clock.now,
    { concurrency: 1, rateMiBs: 0, batch: 2 },
    new ReplicaProver(signer, agent, () => clock.now),
    random,
  );
}

test('a page full of chunks with no good copy on a live server does not keep repair from restoring the others', async () => {
  const store = new SqliteStore(join(dir, 'starved.db'));
  const clock = { now: 1_000_000 };
  const lines: { msg: string; chunks?: number }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const registry = new Registry(store, log, () => clock.now, 2000);
  // The target refuses every copy: what matters is which copies it is asked for.
  const asked: string[] = [];
  const target = createServer((req, res) => {
    asked.push(req.url ?? '');
    res.statusCode = 503;
    res.end('{}');
  });
  await new Promise<void>((res) => target.listen(0, '127.0.0.1', res));
  const targetUrl = `http://127.0.0.1:${(target.address() as { port: number }).port}`;
  const [source, sink, down] = [hex(1), hex(2), hex(3)];
  const register = (id: string, url: string, lastHeartbeat: number) =>
    store.registerServer({ id, url, ...stats, registeredAt: 1, lastHeartbeat }, 'k');
  register(source, 'http://127.0.0.1:9', clock.now);
  register(sink, targetUrl, clock.now);
  register(down, 'http://127.0.0.1:9', clock.now - 10_000); // down, but not yet lost: still counted

  // Worse off and older than the restorable chunk: copies only on the server that is
  // down, and copies that all went corrupt. Twice the page size of them.
  const chunk = (n: number, servers: string[]) => ({ id: hex(n, 64), size: 1, servers });
  store.createUpload({ id: hex(9), replicas: 2, createdAt: 0, expiresAt: 10 });
  store.commitBlob({
    id: hex(5),
    uploadId: hex(9),
    wanted: 2,
    createdAt: 1,
    chunks: [1, 2].map((n) => chunk(n, [down])).concat([3, 4].map((n) => chunk(n, [source]))),
  });
  for (const n of [3, 4]) store.markReplicaCorrupt(hex(n, 64), source);
  store.createUpload({ id: hex(10), replicas: 2, createdAt: 0, expiresAt: 10 });
  store.commitBlob({ id: hex(6), uploadId: hex(10), wanted: 2, createdAt: 2, chunks: [chunk(7, [source])] });

  const repairer = repairerFor(store, registry, log, clock);
  try {
    await repairer.drain(1);
    assert.deepEqual(asked, [`/v1/chunks/${hex(7, 64)}/replicate`]);
    const noted = lines.filter((l) => /cannot be repaired/.test(l.msg));
    assert.equal(noted.length, 1, 'the chunks repair cannot restore are logged');
    assert.equal(noted[0]?.chunks, 4);
    await repairer.drain(1);
    assert.equal(
      lines.filter((l) => /cannot be repaired/.test(l.msg)).length,
      1,
      'once, while their number holds',
    );
  } finally {
    await repairer.stop();
    target.close();
    store.close();
  }
});

test('re-checks of reported replicas: one at a time per replica, and a bounded number in all', async () => {
  const store = new SqliteStore(join(dir, 'verify.db'));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  const registry = new Registry(store, log, () => clock.now, 2000);
  // The server holds every answer until the test lets them go.
  const held: { url: string; answer: () => void }[] = [];
  const server = createServer((req, res) => {
    held.push({ url: req.url ?? '', answer: () => res.end(JSON.stringify({ ok: true })) });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  store.registerServer({ id: hex(1), url, ...stats, registeredAt: 1, lastHeartbeat: clock.now }, 'k');
  const repairer = repairerFor(store, registry, log, clock);
  const settle = () => new Promise((res) => setTimeout(res, 200));
  try {
    const same = Array.from({ length: 10 }, () => repairer.verifyReplica(hex(7, 64), hex(1)));
    await settle();
    assert.equal(held.length, 1, 'the same replica is re-checked once while a re-check is pending');
    const others = Array.from({ length: 50 }, (_, i) => repairer.verifyReplica(hex(100 + i, 64), hex(1)));
    await settle();
    assert.equal(held.length, 32, 'at most 32 re-checks in flight');
    for (const h of held) h.answer();
    await Promise.all([...same, ...others]);
    const again = repairer.verifyReplica(hex(7, 64), hex(1));
    await settle();
    assert.equal(held.length, 33, 'once answered, the replica may be re-checked again');
    held[32]?.answer();
    await again;
  } finally {
    await repairer.stop();
    server.close();
    store.close();
  }
});

test('repair goes on to the next page of chunks soon after one that restored something, without waiting for its timer, and records each page in one transaction', async () => {
  const store = new SqliteStore(join(dir, 'pages.db'));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  const registry = new Registry(store, log, () => clock.now, 2000);
  const receiptKey = Buffer.alloc(32, 7).toString('base64url');
  const [source, sink] = [hex(1), hex(2)];
  // The target takes every copy and answers with its receipt, as a file server does.
  const target = createServer((req, res) => {
    const chunkId = (req.url ?? '').split('/')[3] ?? '';
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        receipts: [{ server: sink, receipt: receiptFor(receiptKey, sink, chunkId, 1) }],
        failed: [],
      }),
    );
  });
  await new Promise<void>((res) => target.listen(0, '127.0.0.1', res));
  const targetUrl = `http://127.0.0.1:${(target.address() as { port: number }).port}`;
  registerServers(
    store,
    [
      { id: source, url: 'http://127.0.0.1:9' },
      { id: sink, url: targetUrl },
    ],
    clock.now,
    stats,
    receiptKey,
  );
  commitChunks(
    store,
    2,
    [1, 2, 3, 4, 5].map((n) => ({ id: hex(n, 64), size: 1, servers: [source] })),
  );

  // Two chunks a page, and a timer that would not fire within the test.
  const recorded: number[] = [];
  const addReplicas = store.addReplicas.bind(store);
  store.addReplicas = (replicas, now) => {
    recorded.push(replicas.length);
    addReplicas(replicas, now);
  };
  const repairer = repairerFor(store, registry, log, clock);
  try {
    repairer.kick();
    const deadline = Date.now() + 5000;
    while (repairer.progress.chunks < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(repairer.progress.chunks, 5, 'all three pages restored after one kick');
    assert.equal(repairer.progress.failures, 0);
    await repairer.stop();
    assert.deepEqual(recorded, [2, 2, 1], 'each page recorded in one transaction');
    const left = store.underReplicated([source, sink], [source, sink], 10);
    assert.equal(left.chunks.length, 0, 'every copy is in the map');
  } finally {
    await repairer.stop();
    target.close();
    store.close();
  }
});

/**
 * Two holders of a chunk wanted three times, and a target. The first holder cannot give
 * its copy: it answers every read with `sourceAnswer` (404, or bytes that are not the
 * chunk) and every verify order with "fine". The target copies from whichever source
 * main names, as a file server would: it fails with what it got from a bad one.
 */
async function repairAroundABadHolder(name: string, bad: 'empty' | 'garbage') {
  const store = new SqliteStore(join(dir, `${name}.db`));
  const clock = { now: 1_000_000 };
  const lines: { msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const registry = new Registry(store, log, () => clock.now, 60_000);
  const chunk = Buffer.from('a chunk repair restores');
  const id = sha256Hex(chunk);
  const listen = async (handler: Parameters<typeof createServer>[1]) => {
    const server = createServer(handler);
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
  };
  const notFound = (res: import('node:http').ServerResponse) => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"SEDFS_ERR_CHUNK_NOT_FOUND","message":"no such chunk on this server"}}');
  };
  const badHolder = await listen((req, res) => {
    if (req.url?.endsWith('/verify')) return res.end('{"ok":true}');
    if (bad === 'empty') return notFound(res);
    res.writeHead(200, { 'content-length': chunk.length });
    res.end(Buffer.alloc(chunk.length, 7));
  });
  const goodHolder = await listen((_req, res) => {
    res.writeHead(200, { 'content-length': chunk.length });
    res.end(chunk);
  });
  const [badId, goodId, targetId] = [hex(1), hex(2), hex(3)];
  const copiedFrom: string[] = [];
  const target = await listen((req, res) => {
    const ticket = String(req.headers['x-sedfs-ticket']).split('.')[0] as string;
    const from = JSON.parse(Buffer.from(ticket, 'base64url').toString()).from as string;
    copiedFrom.push(from);
    req.resume();
    if (from === goodHolder.url) {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          receipts: [{ server: targetId, receipt: receiptFor('k', targetId, id, chunk.length) }],
          failed: [],
        }),
      );
    } else if (bad === 'empty') notFound(res);
    else {
      res.writeHead(422, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"SEDFS_ERR_HASH_MISMATCH","message":"not the chunk"}}');
    }
  });
  registerServers(
    store,
    [
      { id: badId, url: badHolder.url },
      { id: goodId, url: goodHolder.url },
      { id: targetId, url: target.url },
    ],
    clock.now,
    stats,
  );
  commitChunks(store, 3, [{ id, size: chunk.length, servers: [badId, goodId] }]);
  // The bad holder is drawn first, then the draws alternate.
  let draws = 0;
  const repairer = repairerFor(store, registry, log, clock, () => (draws++ % 2 === 0 ? 0 : 0.99));
  return {
    store,
    repairer,
    lines,
    id,
    ids: { badId, goodId, targetId },
    urls: { bad: badHolder.url, good: goodHolder.url },
    copiedFrom,
    async close() {
      await repairer.stop();
      for (const s of [badHolder, goodHolder, target]) s.server.close();
      store.close();
    },
  };
}

test('a repair source that does not have the chunk main counted there is read back by main, dropped from the map, and the chunk is copied from another holder', async () => {
  const c = await repairAroundABadHolder('empty-source', 'empty');
  try {
    for (let i = 0; i < 6 && !c.store.replicasOf([c.id]).get(c.id)?.includes(c.ids.targetId); i++) {
      await c.repairer.drain(1);
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(c.copiedFrom[0], c.urls.bad, 'the bad holder was the first source');
    assert.deepEqual(c.store.replicasOf([c.id]).get(c.id)?.sort(), [c.ids.goodId, c.ids.targetId]);
    assert.ok(
      c.lines.some((l) =>
        /repair source check: a server does not have a chunk main counted there/.test(l.msg),
      ),
    );
  } finally {
    await c.close();
  }
});

test('a repair source that sends wrong bytes and calls its copy fine does not hold up the repair: another holder is the source', async () => {
  const c = await repairAroundABadHolder('garbage-source', 'garbage');
  try {
    for (let i = 0; i < 6 && !c.store.replicasOf([c.id]).get(c.id)?.includes(c.ids.targetId); i++) {
      await c.repairer.drain(1);
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(c.copiedFrom[0], c.urls.bad, 'the bad holder was the first source');
    assert.ok(c.store.replicasOf([c.id]).get(c.id)?.includes(c.ids.targetId), 'the chunk was copied');
    assert.equal(c.copiedFrom.at(-1), c.urls.good);
  } finally {
    await c.close();
  }
});
