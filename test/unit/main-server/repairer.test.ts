import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { sha256Hex } from '../../../src/crypto/hash.js';
import { receiptFor } from '../../../src/crypto/receipts.js';
import { Registry } from '../../../src/main-server/registry.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';
import type { TicketPayload } from '../../../src/protocol/ticket.js';
import { commitChunks, registerServers, repairerFor } from '../../helpers/chunk-map.js';
import { waitFor } from '../../helpers/cluster.js';

/** The payload of the ticket a request carries. */
const ticketIn = (req: IncomingMessage): TicketPayload =>
  JSON.parse(
    Buffer.from(String(req.headers['x-sedfs-ticket']).split('.')[0] as string, 'base64url').toString(),
  );
/** What a copy order's receipt must name: the id in its write ticket, as a file server reads it. */
const uploadIn = (req: IncomingMessage): string => ticketIn(req).upload as string;

const dir = mkdtempSync(join(tmpdir(), 'sedfs-repairer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (n: number, len = 32) => n.toString(16).padStart(len, '0');
const stats = { totalBytes: 100, freeBytes: 50, usedBytes: 10, chunkCount: 0 };

test('a page full of chunks with no good copy on a live server does not keep repair from restoring the others', async () => {
  const store = new SqliteStore(join(dir, 'starved.db'));
  const clock = { now: 1_000_000 };
  const lines: { msg: string; chunks?: number }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const registry = new Registry(store, log, () => clock.now, 2000, 600_000, 'http');
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
  const registry = new Registry(store, log, () => clock.now, 2000, 600_000, 'http');
  // The server holds every answer until the test lets them go.
  const held: { url: string; answer: () => void }[] = [];
  const server = createServer((req, res) => {
    held.push({ url: req.url ?? '', answer: () => res.end(JSON.stringify({ ok: true })) });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  store.registerServer({ id: hex(1), url, ...stats, registeredAt: 1, lastHeartbeat: clock.now }, 'k');
  const repairer = repairerFor(store, registry, log, clock);
  /** Waits for `n` re-checks to arrive (however slow the machine), then a while for any more. */
  const arrived = async (n: number) => {
    for (const deadline = Date.now() + 10_000; held.length < n && Date.now() < deadline; ) await sleep(10);
    await sleep(200);
    return held.length;
  };
  try {
    const same = Array.from({ length: 10 }, () => repairer.verifyReplica(hex(7, 64), hex(1)));
    assert.equal(await arrived(1), 1, 'the same replica is re-checked once while a re-check is pending');
    const others = Array.from({ length: 50 }, (_, i) => repairer.verifyReplica(hex(100 + i, 64), hex(1)));
    assert.equal(await arrived(32), 32, 'at most 32 re-checks in flight');
    for (const h of held) h.answer();
    await Promise.all([...same, ...others]);
    const again = repairer.verifyReplica(hex(7, 64), hex(1));
    assert.equal(await arrived(33), 33, 'once answered, the replica may be re-checked again');
    held[32]?.answer();
    await again;
  } finally {
    await repairer.stop();
    server.close();
    store.close();
  }
});

/** A file server that takes every repair copy and answers with its receipt, as `id`. */
async function receiver(id: string, receiptKey: string): Promise<{ url: string; close: () => void }> {
  const server = createServer((req, res) => {
    const chunkId = (req.url ?? '').split('/')[3] ?? '';
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        receipts: [{ server: id, receipt: receiptFor(receiptKey, id, chunkId, 1, uploadIn(req)) }],
        failed: [],
      }),
    );
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => server.close(),
  };
}

/**
 * A store whose chunks repair copies from `source` (never asked: a copy is the target's
 * to fetch) to `sink`, a receiver; with a silent log and the test's clock.
 */
async function sourceToSink(name: string) {
  const store = new SqliteStore(join(dir, `${name}.db`));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  const registry = new Registry(store, log, () => clock.now, 2000, 600_000, 'http');
  const receiptKey = Buffer.alloc(32, 7).toString('base64url');
  const [source, sink] = [hex(1), hex(2)];
  const target = await receiver(sink, receiptKey);
  registerServers(
    store,
    [
      { id: source, url: 'http://127.0.0.1:9' },
      { id: sink, url: target.url },
    ],
    clock.now,
    stats,
    receiptKey,
  );
  const close = () => {
    target.close();
    store.close();
  };
  return { store, clock, log, registry, source, sink, close };
}

test('repair goes on to the next page of chunks soon after one that restored something, without waiting for its timer, and records each page in one transaction', async () => {
  const { store, clock, log, registry, source, sink, close } = await sourceToSink('pages');
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
  // Copies are recorded at the end of each page, and during one every so often: not
  // within this test, however slow its copies.
  const repairer = repairerFor(store, registry, log, clock, Math.random, 1000, { recordEveryMs: 60_000 });
  try {
    repairer.kick();
    const deadline = Date.now() + 20_000;
    while (repairer.progress.chunks < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(repairer.progress.chunks, 5, 'all three pages restored after one kick');
    assert.equal(repairer.progress.failures, 0);
    await repairer.stop();
    assert.deepEqual(recorded, [2, 2, 1], 'each page recorded in one transaction');
    const left = store.underReplicated([source, sink], [source, sink], 10);
    assert.equal(left.chunks.length, 0, 'every copy is in the map');
  } finally {
    await repairer.stop();
    close();
  }
});

test('a pass looks at a stretch of the map: one sweep restores a queue larger than a stretch and a page, and counts the chunks without a live copy and the surplus of every stretch', async () => {
  const store = new SqliteStore(join(dir, 'sweep.db'));
  const clock = { now: 1_000_000 };
  const lines: { msg: string; chunks?: number }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const registry = new Registry(store, log, () => clock.now, 2000, 600_000, 'http');
  const receiptKey = Buffer.alloc(32, 7).toString('base64url');
  const [source, sink, spare, down] = [hex(1), hex(2), hex(3), hex(4)];
  const targets = [await receiver(sink, receiptKey), await receiver(spare, receiptKey)];
  registerServers(
    store,
    [
      { id: source, url: 'http://127.0.0.1:9' },
      { id: sink, url: targets[0]?.url as string },
      { id: spare, url: targets[1]?.url as string },
      // Down, but not yet lost: its copies count, and cannot be copied from.
      { id: down, url: 'http://127.0.0.1:9', lastHeartbeat: clock.now - 10_000 },
    ],
    clock.now,
    stats,
    receiptKey,
  );
  // Twelve chunks wanted twice, four to a stretch: 3 and 7 only on the server that is
  // down, 4 and 12 on three live servers (a copy too many), the other eight only on the
  // source: three of them in the second stretch and three in the third, more than a page.
  const holders = (n: number) =>
    [3, 7].includes(n) ? [down] : [4, 12].includes(n) ? [source, sink, spare] : [source];
  const ids = Array.from({ length: 12 }, (_, i) => hex(i + 1, 64));
  commitChunks(
    store,
    2,
    ids.map((id, i) => ({ id, size: 1, servers: holders(i + 1) })),
  );
  const repairer = repairerFor(store, registry, log, clock, Math.random, 4);
  try {
    await repairer.drain(1);
    const short = ids.filter((_, i) => holders(i + 1).length === 1 && holders(i + 1)[0] === source);
    assert.equal(repairer.progress.chunks, short.length, 'each short chunk copied once');
    for (const id of short) assert.equal(store.replicasOf([id]).get(id)?.length, 2, `${id} restored`);
    assert.deepEqual(
      lines.filter((l) => /cannot be repaired/.test(l.msg)).map((l) => l.chunks),
      [2],
      'logged once, with the whole sweep’s count',
    );
    assert.equal(store.countSurplus(), 2, 'the copy too many in the first stretch and the one in the last');

    // The sweeps go round: a chunk at the start of the map that lost a copy since (behind
    // the cursor, wherever passes chained after the sweep left it) is restored by a later one.
    const first = ids[0] as string;
    const copy = store
      .replicasOf([first])
      .get(first)
      ?.find((s) => s !== source) as string;
    store.markReplicaCorrupt(first, copy);
    await repairer.drain();
    assert.equal(repairer.progress.chunks, short.length + 1);
    assert.equal(store.replicasOf([first]).get(first)?.length, 2);
  } finally {
    await repairer.stop();
    for (const t of targets) t.close();
    store.close();
  }
});

test('after a kick, passes follow each other through the map until they find the work, however far from the cursor it is', async () => {
  const { store, clock, log, registry, source, sink, close } = await sourceToSink('kick');
  // Twelve chunks wanted twice, four to a stretch; only the last is short. Nothing else
  // starts a pass (no timer): the kick's round must get there.
  const ids = Array.from({ length: 12 }, (_, i) => hex(i + 1, 64));
  commitChunks(
    store,
    2,
    ids.map((id) => ({ id, size: 1, servers: id === ids[11] ? [source] : [source, sink] })),
  );
  const repairer = repairerFor(store, registry, log, clock, Math.random, 4);
  try {
    repairer.kick();
    const deadline = Date.now() + 5000;
    while (repairer.progress.chunks < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(repairer.progress.chunks, 1);
  } finally {
    await repairer.stop();
    close();
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
  const registry = new Registry(store, log, () => clock.now, 60_000, 600_000, 'http');
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
  /** the source's id each copy order names (the target holds the source's certificate to it) */
  const namedSources: string[] = [];
  const target = await listen((req, res) => {
    const from = ticketIn(req).from as string;
    copiedFrom.push(from);
    namedSources.push(ticketIn(req).fromServer as string);
    req.resume();
    if (from === goodHolder.url) {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          receipts: [
            { server: targetId, receipt: receiptFor('k', targetId, id, chunk.length, uploadIn(req)) },
          ],
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
  // A copy draws its source, then its target (one candidate: any draw). The bad holder is
  // drawn first, then the sources alternate.
  let draws = 0;
  const repairer = repairerFor(store, registry, log, clock, () => (draws++ % 4 === 2 ? 0.99 : 0));
  return {
    store,
    repairer,
    lines,
    id,
    ids: { badId, goodId, targetId },
    urls: { bad: badHolder.url, good: goodHolder.url },
    copiedFrom,
    namedSources,
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
    assert.deepEqual(
      c.namedSources,
      c.copiedFrom.map((u) => (u === c.urls.bad ? c.ids.badId : c.ids.goodId)),
      'each copy order names its source by id too',
    );
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

test('repair copies a chunk to no server that has a delete order queued for it: the order would delete the new copy', async () => {
  const store = new SqliteStore(join(dir, 'queued.db'));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  const registry = new Registry(store, log, () => clock.now, 2000, 600_000, 'http');
  // Every target refuses the copy: what matters is which are asked.
  const asked: string[] = [];
  const target = createServer((req, res) => {
    asked.push(String(req.headers.host));
    res.statusCode = 503;
    res.end('{}');
  });
  await new Promise<void>((res) => target.listen(0, '127.0.0.1', res));
  const port = (target.address() as { port: number }).port;
  const [source, deleting, free] = [hex(1), hex(2), hex(3)];
  // Both targets are the one listener, told apart by the host they were reached at.
  registerServers(
    store,
    [
      { id: source, url: 'http://127.0.0.1:9' },
      { id: deleting, url: `http://127.0.0.1:${port}` },
      { id: free, url: `http://localhost:${port}` },
    ],
    clock.now,
  );
  const chunk = hex(7, 64);
  commitChunks(store, 2, [{ id: chunk, size: 1, servers: [source] }]);
  // As an expired upload that placed the chunk there (and never wrote) leaves it.
  store.db
    .prepare('INSERT INTO chunk_deletions (chunk_id, server_id, queued_at) VALUES (?, ?, 1)')
    .run(chunk, deleting);
  const repairer = repairerFor(store, registry, log, clock);
  try {
    for (let i = 0; i < 4; i++) await repairer.drain(1);
    assert.ok(asked.length >= 4);
    assert.deepEqual([...new Set(asked)], [`localhost:${port}`]);
  } finally {
    await repairer.stop();
    target.close();
    store.close();
  }
});

test('repair copies a chunk to a server whose copy of it main holds corrupt only when no other server can make up the count', async () => {
  const store = new SqliteStore(join(dir, 'corrupt-target.db'));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  const registry = new Registry(store, log, () => clock.now, 2000, 600_000, 'http');
  // Every target refuses the copy: what matters is which are asked, for which chunk.
  const asked: string[] = [];
  const target = createServer((req, res) => {
    asked.push(`${String(req.url).split('/')[3]?.slice(0, 4)} ${String(req.headers.host).split(':')[0]}`);
    res.statusCode = 503;
    res.end('{}');
  });
  await new Promise<void>((res) => target.listen(0, '127.0.0.1', res));
  const port = (target.address() as { port: number }).port;
  const [source, rotted, free] = [hex(1), hex(2), hex(3)];
  registerServers(
    store,
    [
      { id: source, url: 'http://127.0.0.1:9' },
      { id: rotted, url: `http://127.0.0.1:${port}` },
      { id: free, url: `http://localhost:${port}` },
    ],
    clock.now,
  );
  // Wanted twice (one copy to make: another server can take it) and three times (two).
  const [twice, thrice] = [`aaaa${hex(1, 60)}`, `bbbb${hex(1, 60)}`];
  commitChunks(store, 2, [{ id: twice, size: 1, servers: [source, rotted] }], 0);
  commitChunks(store, 3, [{ id: thrice, size: 1, servers: [source, rotted] }], 1);
  for (const c of [twice, thrice]) store.markReplicaCorrupt(c, rotted);
  const repairer = repairerFor(store, registry, log, clock);
  try {
    for (let i = 0; i < 10; i++) await repairer.drain(1);
    assert.deepEqual([...new Set(asked.filter((a) => a.startsWith('aaaa')))], ['aaaa localhost']);
    assert.deepEqual([...new Set(asked.filter((a) => a.startsWith('bbbb')))].sort(), [
      'bbbb 127.0.0.1',
      'bbbb localhost',
    ]);
  } finally {
    await repairer.stop();
    target.close();
    store.close();
  }
});

test('sedfs check’s count of the repair queue reads the map a stretch at a time, letting other work run between stretches, and adds up to the whole map’s', async () => {
  const store = new SqliteStore(join(dir, 'count.db'));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  const registry = new Registry(store, log, () => clock.now, 2000, 600_000, 'http');
  const [a, b, down] = [hex(1), hex(2), hex(3)];
  registerServers(store, [a, b], clock.now);
  registerServers(
    store,
    [{ id: down, url: 'http://127.0.0.1:9', lastHeartbeat: clock.now - 10_000 }],
    clock.now,
  );
  // Eleven chunks wanted twice: every third with one copy, 5 and 10 only on the server that is down.
  const holders = (n: number) => (n === 5 || n === 10 ? [down] : n % 3 === 0 ? [a] : [a, b]);
  commitChunks(
    store,
    2,
    Array.from({ length: 11 }, (_, i) => ({ id: hex(i + 1, 64), size: 1, servers: holders(i + 1) })),
  );
  const repairer = repairerFor(store, registry, log, clock, Math.random, 4);
  const stretches: number[] = [];
  const repairCounts = store.repairCounts.bind(store);
  store.repairCounts = (...args) => {
    const counts = repairCounts(...args);
    stretches.push(counts.chunks);
    return counts;
  };
  try {
    let readWhenOtherWorkRan: number | undefined;
    const counting = repairer.countQueue();
    setImmediate(() => {
      readWhenOtherWorkRan = stretches.length;
    });
    assert.deepEqual(await counting, { chunks: 11, underReplicated: 5, withoutLiveCopy: 2 });
    assert.deepEqual(stretches, [4, 4, 3], 'three stretches of at most four chunks');
    assert.ok(
      readWhenOtherWorkRan !== undefined && readWhenOtherWorkRan < stretches.length,
      `other work ran after ${readWhenOtherWorkRan} of ${stretches.length} stretches`,
    );
  } finally {
    await repairer.stop();
    store.close();
  }
});

test('copies made while main cannot record them (its disk full) are kept and recorded once it can, and never made again meanwhile', async () => {
  const { store, clock, registry, source, sink, close } = await sourceToSink('unrecorded');
  const lines: { msg: string; level: number }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const chunk = hex(1, 64);
  commitChunks(store, 2, [{ id: chunk, size: 1, servers: [source] }]);
  let full = true;
  const addReplicas = store.addReplicas.bind(store);
  store.addReplicas = (replicas, now) => {
    if (full) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    addReplicas(replicas, now);
  };
  const repairer = repairerFor(store, registry, log, clock);
  try {
    await repairer.drain(4);
    assert.equal(repairer.progress.chunks, 1, 'copied once');
    assert.deepEqual(store.replicasOf([chunk]).get(chunk), [source], 'not recorded yet');
    assert.equal(lines.filter((l) => /could not record restored replicas/.test(l.msg)).length, 1);
    full = false;
    await repairer.drain(4);
    assert.equal(repairer.progress.chunks, 1, 'still copied once');
    assert.deepEqual(store.replicasOf([chunk]).get(chunk)?.sort(), [source, sink].sort());
  } finally {
    await repairer.stop();
    close();
  }
});

test('while main cannot record its copies, repair orders no more once as many wait as it may hold, and goes on once they are recorded', async () => {
  const { store, clock, registry, source, sink, close } = await sourceToSink('unrecorded-cap');
  const log = pino({ level: 'silent' });
  const chunks = [1, 2, 3, 4].map((n) => hex(n, 64));
  commitChunks(
    store,
    2,
    chunks.map((id) => ({ id, size: 1, servers: [source] })),
  );
  let full = true;
  const addReplicas = store.addReplicas.bind(store);
  store.addReplicas = (replicas, now) => {
    if (full) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    addReplicas(replicas, now);
  };
  // Two a page, at most two waiting to be recorded.
  const repairer = repairerFor(store, registry, log, clock, Math.random, 1000, { maxUnrecorded: 2 });
  try {
    await repairer.drain(3);
    assert.equal(repairer.progress.chunks, 2, 'a page copied, then no more');
    // Named by a heartbeat meanwhile: still nothing while two wait.
    repairer.kickChunks(chunks.slice(2));
    await repairer.drain(1);
    assert.equal(repairer.progress.chunks, 2, 'a pass while they wait copies nothing');
    full = false;
    await repairer.drain(3);
    assert.equal(repairer.progress.chunks, 4, 'the rest once the first were recorded');
    for (const id of chunks) assert.deepEqual(store.replicasOf([id]).get(id)?.sort(), [source, sink].sort());
  } finally {
    await repairer.stop();
    close();
  }
});

test('chunks named as having lost a replica (a heartbeat, a scrubber) are restored by looking them up, not by a round of the whole map', async () => {
  const { store, clock, log, registry, source, sink, close } = await sourceToSink('named');
  const ids = Array.from({ length: 12 }, (_, i) => hex(i + 1, 64));
  commitChunks(
    store,
    2,
    ids.map((id) => ({ id, size: 1, servers: [source, sink] })),
  );
  // A heartbeat from the sink says it lost chunk 7: only that one is short.
  const lost = ids[6] as string;
  store.applyChanges(sink, [], [lost], clock.now);
  const stretches: string[] = [];
  const underReplicated = store.underReplicated.bind(store);
  store.underReplicated = (...args) => {
    stretches.push(args[3]?.after ?? '');
    return underReplicated(...args);
  };
  // Four chunks a stretch: a round of the map would be three stretches.
  const repairer = repairerFor(store, registry, log, clock, Math.random, 4);
  try {
    repairer.kickChunks([lost]);
    const deadline = Date.now() + 5000;
    while (repairer.progress.chunks < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(repairer.progress.chunks, 1, 'the chunk is restored');
    await repairer.stop();
    assert.deepEqual(store.replicasOf([lost]).get(lost)?.toSorted(), [source, sink].toSorted());
    assert.deepEqual(stretches, [], 'no stretch of the map was read for it');
  } finally {
    await repairer.stop();
    close();
  }
});

test('under --repair-rate copies start at that rate whichever slot they run in, and a lone copy waits for none', async () => {
  const { store, clock, log, registry, source, close } = await sourceToSink('paced');
  // Chunks of one byte, at one byte every 375 ms; eight copies in flight at most.
  const rateMiBs = 1 / (0.375 * 1024 * 1024);
  const repairer = repairerFor(store, registry, log, clock, Math.random, 1000, {
    concurrency: 8,
    rateMiBs,
    batch: 16,
  });
  try {
    commitChunks(store, 2, [{ id: hex(1, 64), size: 1, servers: [source] }]);
    let began = performance.now();
    await repairer.drain(1);
    assert.equal(repairer.progress.chunks, 1);
    // Each slot used to wait its copy's time for every slot: 3 s after a lone copy (the
    // bound leaves a loaded machine room below that).
    assert.ok(
      performance.now() - began < 2500,
      `a lone copy took ${(performance.now() - began).toFixed(0)} ms`,
    );
    commitChunks(
      store,
      2,
      [2, 3, 4, 5, 6].map((n) => ({ id: hex(n, 64), size: 1, servers: [source] })),
      1,
    );
    began = performance.now();
    await repairer.drain(1);
    assert.equal(repairer.progress.chunks, 6);
    const took = performance.now() - began;
    assert.ok(took >= 4 * 375 - 10, `five copies at the rate took ${took.toFixed(0)} ms`);
  } finally {
    await repairer.stop();
    close();
  }
});

// A copy order to a hung target (its kernel takes the connection and the order, the
// process answers nothing) waited out undici's 60 s, holding a repair slot.
test('a copy ordered to a target that hangs fails once its health check goes unanswered too, and the drain goes on', {
  timeout: 40_000,
}, async () => {
  const store = new SqliteStore(join(dir, 'hung-target.db'));
  const clock = { now: 1_000_000 };
  const lines: { msg: string; reason?: string }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const registry = new Registry(store, log, () => clock.now, 60_000, 600_000, 'http');
  const sockets: Socket[] = [];
  const hung = createNetServer((s) => sockets.push(s));
  await new Promise<void>((res) => hung.listen(0, '127.0.0.1', res));
  const [holder, target] = [hex(1), hex(2)];
  registerServers(
    store,
    [
      { id: holder, url: 'http://127.0.0.1:9' },
      { id: target, url: `http://127.0.0.1:${(hung.address() as AddressInfo).port}` },
    ],
    clock.now,
    stats,
  );
  commitChunks(store, 2, [{ id: hex(3, 64), size: 1, servers: [holder] }]);
  const repairer = repairerFor(store, registry, log, clock);
  const draining = repairer.drain(1);
  try {
    await waitFor('the copy to fail', () => lines.some((l) => l.msg === 'repair copy failed'), 25_000);
    const failed = lines.find((l) => l.msg === 'repair copy failed');
    assert.match(failed?.reason ?? '', /has not answered for 10 s, nor answered a health check/);
    assert.ok(repairer.progress.failures >= 1);
  } finally {
    await repairer.stop();
    await draining;
    for (const s of sockets) s.destroy();
    hung.close();
    store.close();
  }
});
