import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino, { type Logger } from 'pino';
import { createAgent } from '../../../src/common/http-client.js';
import { sha256Hex } from '../../../src/crypto/hash.js';
import { generateTicketKeyPem, ticketSigner } from '../../../src/crypto/tickets.js';
import { Registry } from '../../../src/main-server/registry.js';
import { ReplicaProver } from '../../../src/main-server/replica-prover.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';
import { readPauseMs, SurplusTrimmer } from '../../../src/main-server/surplus-trimmer.js';
import { commitChunks, registerServers, TEST_STATS } from '../../helpers/chunk-map.js';
import { fakeFileServer } from '../../helpers/fake-file-server.js';
import { seededBytes } from '../../helpers/seeded.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-trimmer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (n: number, len = 32) => n.toString(16).padStart(len, '0');
const GRACE = 1000;
const chunk = seededBytes(7, 96 * 1024);
const chunkId = sha256Hex(chunk);

/**
 * A trimmer reading back through a real prover, with the grace period over: a copy
 * noted as surplus is due at once.
 */
function trimmerOn(
  store: SqliteStore,
  registry: Registry,
  log: Logger,
  clock: { now: number },
  opts: { wrongBytes?: (chunk: string, server: string) => void; readRate?: number } = {},
): SurplusTrimmer {
  const trimmer = new SurplusTrimmer(
    store,
    registry,
    new ReplicaProver(ticketSigner(generateTicketKeyPem()), createAgent(), () => clock.now),
    log,
    () => clock.now,
    GRACE,
    () => {},
    opts.wrongBytes,
    opts.readRate,
  );
  clock.now += GRACE;
  return trimmer;
}

/**
 * Three honest servers hold the chunk (R=3); a fourth, `liar`, claims it in a heartbeat
 * and reports a nearly empty disk, so the surplus copy noted is on an honest server.
 */
async function clusterWithAClaim(name: string, liarBody: Buffer | undefined) {
  const store = new SqliteStore(join(dir, `${name}.db`));
  const clock = { now: 1_000_000 };
  const lines: { msg: string }[] = [];
  const rechecks: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const registry = new Registry(store, log, () => clock.now, 60_000, 600_000, 'http');
  const honest = await Promise.all([1, 2, 3].map(() => fakeFileServer(new Map([[chunkId, chunk]]))));
  const liar = await fakeFileServer(liarBody ? new Map([[chunkId, liarBody]]) : new Map());
  const ids = [hex(1), hex(2), hex(3)];
  const servers = [
    ...honest.map((h, i) => ({ id: ids[i] as string, url: h.url })),
    { id: hex(4), url: liar.url },
  ];
  registerServers(store, servers, clock.now);
  commitChunks(store, 3, [{ id: chunkId, size: chunk.length, servers: ids }]);
  // What the heartbeat route does with the liar's beat.
  store.heartbeat(hex(4), { ...TEST_STATS, freeBytes: 2 ** 50 }, clock.now);
  assert.deepEqual(store.applyChanges(hex(4), [chunkId], [], clock.now), { adopted: 1, dropped: 0 });
  assert.equal(store.findSurplus(registry.live(), clock.now), 1);
  const noted = store.db.prepare('SELECT server_id FROM surplus').pluck().get() as string;
  assert.ok(ids.includes(noted), 'the copy noted as surplus is an honest server’s');
  const trimmer = trimmerOn(store, registry, log, clock, {
    wrongBytes: (chunk, server) => rechecks.push(`${chunk}/${server}`),
  });
  return {
    store,
    trimmer,
    lines,
    rechecks,
    honest,
    liar,
    ids,
    async close() {
      await trimmer.stop();
      for (const s of [...honest, liar]) s.server.close();
      store.close();
    },
  };
}

test('a server that claims a chunk it does not hold does not get a real copy deleted: its claim is dropped and the honest copies stay', async () => {
  const c = await clusterWithAClaim('claims', undefined);
  try {
    await c.trimmer.runNow();
    assert.deepEqual(c.store.pendingDeletions([...c.ids, hex(4)], 10, Number.MAX_SAFE_INTEGER), []);
    assert.deepEqual(c.store.replicasOf([chunkId]).get(chunkId)?.sort(), c.ids);
    assert.equal(c.store.countSurplus(), 0);
    assert.ok(c.liar.asked.includes(`GET /v1/chunks/${chunkId}`), 'the claimed copy was read');
    assert.ok(
      c.lines.some((l) => /does not have a chunk main counted there: dropped from the map/.test(l.msg)),
    );
    assert.ok(c.lines.some((l) => /a surplus copy is kept/.test(l.msg)));
  } finally {
    await c.close();
  }
});

test('a server that answers with bytes that are not the chunk has that copy marked corrupt: the surplus honest copy is kept, and that server re-checks its copy', async () => {
  const garbage = Buffer.from(chunk);
  garbage[garbage.length - 1] = (garbage[garbage.length - 1] as number) ^ 1;
  const c = await clusterWithAClaim('garbage', garbage);
  try {
    await c.trimmer.runNow();
    assert.deepEqual(c.store.pendingDeletions([...c.ids, hex(4)], 10, Number.MAX_SAFE_INTEGER), []);
    assert.deepEqual(
      c.store.replicasOf([chunkId]).get(chunkId)?.sort(),
      c.ids,
      'main hashed the bytes itself',
    );
    assert.equal(c.store.listServers().find((s) => s.id === hex(4))?.corruptCount, 1);
    assert.ok(c.lines.some((l) => /bytes that are not the chunk/.test(l.msg)));
    assert.deepEqual(c.rechecks, [`${chunkId}/${hex(4)}`], 'its server is told to re-check that copy');
  } finally {
    await c.close();
  }
});

test('a surplus copy is deleted once the copies kept are read back whole and hash to the chunk id', async () => {
  const c = await clusterWithAClaim('honest', chunk);
  try {
    await c.trimmer.runNow();
    const queued = c.store.pendingDeletions([...c.ids, hex(4)], 10, Number.MAX_SAFE_INTEGER);
    assert.equal(queued.length, 1);
    const going = [...c.honest, c.liar][[...c.ids, hex(4)].indexOf(queued[0]?.serverId as string)];
    assert.deepEqual(going?.asked, [], 'the copy that goes is not read: only the ones kept');
    assert.equal(c.store.replicasOf([chunkId]).get(chunkId)?.length, 3);
    assert.ok(c.lines.some((l) => /queued for deletion/.test(l.msg)));
  } finally {
    await c.close();
  }
});

test('a next page whose timer fires before the read budget allows it is asked for again, not left to the timer’s next round', async () => {
  const c = await manySurplus('early', 48 * 1024);
  // Timers count from the event loop's clock, which lags Date.now(): the one for the
  // next page may fire before the budget allows it. Timers of a second or more set
  // during the pass fire half a second early here.
  const realSetTimeout = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) =>
    realSetTimeout(fn, ms !== undefined && ms >= 1000 ? ms - 500 : ms, ...args)) as typeof setTimeout;
  try {
    try {
      await c.trimmer.runNow();
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
    assert.equal(c.queued(), 32, 'one page trimmed');
    assert.equal(await c.untilQueued(40), 40, 'the rest is trimmed once the budget allows');
  } finally {
    await c.close();
  }
});

/**
 * 40 chunks of 1 KiB, more than one pass takes (32), each held by all four servers with
 * R=3; `readRate` is the trimmer's read budget (bytes/s).
 */
async function manySurplus(name: string, readRate?: number) {
  const store = new SqliteStore(join(dir, `${name}.db`));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  const registry = new Registry(store, log, () => clock.now, 60_000, 600_000, 'http');
  const chunks = Array.from({ length: 40 }, (_, i) => seededBytes(100 + i, 1024));
  const held = new Map(chunks.map((c) => [sha256Hex(c), c]));
  const fakes = await Promise.all([1, 2, 3, 4].map(() => fakeFileServer(held)));
  const ids = [hex(1), hex(2), hex(3), hex(4)];
  registerServers(
    store,
    fakes.map((f, i) => ({ id: ids[i] as string, url: f.url })),
    clock.now,
  );
  commitChunks(
    store,
    3,
    [...held.keys()].map((id) => ({ id, size: 1024, servers: ids })),
  );
  assert.equal(store.findSurplus(registry.live(), clock.now), 40);
  const queued = () => store.pendingDeletions(ids, 100, Number.MAX_SAFE_INTEGER).length;
  const trimmer = trimmerOn(store, registry, log, clock, { readRate });
  /** waits up to 20 s for `n` copies queued (the budget's wait is 2 or 6 s; a loaded machine may take longer) */
  const untilQueued = async (n: number) => {
    const deadline = Date.now() + 20_000;
    while (queued() < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return queued();
  };
  return {
    trimmer,
    queued,
    untilQueued,
    async close() {
      await trimmer.stop();
      for (const f of fakes) f.server.close();
      store.close();
    },
  };
}

test('a pass that trimmed a full page of surplus copies is followed by the next at once, not after the timer', async () => {
  const c = await manySurplus('many');
  try {
    await c.trimmer.runNow();
    assert.equal(await c.untilQueued(40), 40, 'every surplus copy queued after one pass was asked for');
  } finally {
    await c.close();
  }
});

test('the surplus trimmer reads copies back within its byte rate: the next page waits until the bytes read allow it', async () => {
  // The first page reads 32 chunks × 3 kept copies × 1 KiB = 96 KiB: six seconds at 16 KiB/s
  // (the pause is what is left of them once the reading is done: on a loaded machine
  // the reading may take a second or two).
  const c = await manySurplus('budget', 16 * 1024);
  try {
    await c.trimmer.runNow();
    assert.equal(c.queued(), 32, 'one page trimmed');
    await c.trimmer.runNow();
    assert.equal(c.queued(), 32, 'a pass asked for at once reads nothing while the budget is spent');
    assert.equal(await c.untilQueued(40), 40, 'the rest is trimmed once the budget allows');
  } finally {
    await c.close();
  }
});

test('a read pause is what the bytes take at the rate, less the time the reading took', () => {
  assert.equal(readPauseMs(64 * 1024 * 1024, 500, 32 * 1024 * 1024), 1500);
  assert.equal(readPauseMs(1024, 500, 32 * 1024 * 1024), 0, 'never negative');
  assert.equal(readPauseMs(64 * 1024 * 1024, 0, 0), 0, 'a rate of 0 is no limit');
});
