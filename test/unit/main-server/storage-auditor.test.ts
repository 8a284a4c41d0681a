import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { createAgent } from '../../../src/common/http-client.js';
import { sha256Hex } from '../../../src/crypto/hash.js';
import { generateTicketKeyPem, ticketSigner } from '../../../src/crypto/tickets.js';
import { Registry } from '../../../src/main-server/registry.js';
import { ReplicaProver } from '../../../src/main-server/replica-prover.js';
import { StorageAuditor } from '../../../src/main-server/storage-auditor.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';
import type { ServerRecord } from '../../../src/main-server/store/store.js';
import { commitChunks, registerServers } from '../../helpers/chunk-map.js';
import { fakeFileServer } from '../../helpers/fake-file-server.js';
import { seededBytes } from '../../helpers/seeded.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-auditor-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (n: number, len = 32) => n.toString(16).padStart(len, '0');

/** An auditor reading back through a real prover; `hooks` stand for repair, re-checks and inventories. */
function auditorOn(
  store: SqliteStore,
  registry: Registry,
  clock: { now: number },
  hooks: {
    lost?: () => void;
    wrongBytes?: (chunkId: string, server: string) => void;
    inventory?: (server: ServerRecord) => Promise<void>;
    randomId?: () => string;
  } = {},
): StorageAuditor {
  return new StorageAuditor(
    store,
    registry,
    new ReplicaProver(ticketSigner(generateTicketKeyPem()), createAgent(), () => clock.now),
    pino({ level: 'silent' }),
    () => clock.now,
    hooks.lost ?? (() => {}),
    hooks.wrongBytes ?? (() => {}),
    hooks.inventory,
    hooks.randomId,
  );
}

test('an audit reads back one replica per server: one there passes, one the server lacks leaves the map, wrong bytes are marked corrupt and re-checked, repair is asked to restore them, and the failing servers are asked for their inventory and get new copies last for an hour', async () => {
  const store = new SqliteStore(join(dir, 'audit.db'));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  const registry = new Registry(store, log, () => clock.now, 60_000, 600_000, 'http');
  const chunk = seededBytes(3, 64 * 1024);
  const id = sha256Hex(chunk);
  const wrong = Buffer.from(chunk);
  wrong[100] = (wrong[100] as number) ^ 1;
  const [holder, loser, rotten, empty] = await Promise.all([
    fakeFileServer(new Map([[id, chunk]])),
    fakeFileServer(new Map()),
    fakeFileServer(new Map([[id, wrong]])),
    fakeFileServer(new Map()),
  ]);
  const servers = [holder, loser, rotten, empty].map((f, i) => ({ id: hex(i + 1), url: f.url }));
  registerServers(store, servers, clock.now);
  commitChunks(store, 3, [{ id, size: chunk.length, servers: servers.slice(0, 3).map((s) => s.id) }]);
  const rechecks: string[] = [];
  const inventories: string[] = [];
  let repairs = 0;
  const auditor = auditorOn(store, registry, clock, {
    lost: () => repairs++,
    wrongBytes: (chunkId, server) => rechecks.push(`${chunkId}/${server}`),
    inventory: async (server) => {
      inventories.push(server.id);
    },
  });
  try {
    await auditor.runNow();
    const [a, b, c, d] = servers.map((s) => auditor.tally(s.id));
    assert.deepEqual(a, { passed: 1, failed: 0 });
    assert.deepEqual(b, { passed: 0, failed: 1 });
    assert.deepEqual(c, { passed: 0, failed: 1 });
    assert.deepEqual(d, { passed: 0, failed: 0 }, 'a server main counts nothing on is not read');
    assert.deepEqual(empty.asked, []);
    assert.deepEqual(store.replicasOf([id]).get(id), [servers[0]?.id], 'only the proven copy still counts');
    const ids = servers.map((s) => s.id);
    assert.equal(store.repairCounts(ids, ids).underReplicated, 1, 'so repair sees the chunk short');
    assert.equal(store.listServers().find((s) => s.id === servers[2]?.id)?.corruptCount, 1);
    assert.deepEqual(rechecks, [`${id}/${servers[2]?.id}`]);
    assert.equal(repairs, 1, 'one call to repair for the pass');
    assert.deepEqual(
      servers.map((s) => registry.trusted(s.id)),
      [true, false, false, true],
      'the servers that failed get new copies only when no other can take them',
    );
    assert.deepEqual(
      inventories.sort(),
      [servers[1]?.id, servers[2]?.id].sort(),
      'the failing servers are asked for their inventory',
    );
    clock.now += 3600_001;
    assert.ok(registry.trusted(servers[1]?.id as string), 'for an hour');
  } finally {
    await auditor.stop();
    for (const f of [holder, loser, rotten, empty]) f.server.close();
    store.close();
  }
});

test('the replica audited on a server is the first at or after a random id, wrapping round to the lowest', () => {
  const store = new SqliteStore(join(dir, 'pick.db'));
  try {
    registerServers(store, [{ id: hex(1), url: 'http://127.0.0.1:9' }], 1);
    const [low, high] = ['4', 'b'].map((c) => c.repeat(64));
    commitChunks(
      store,
      1,
      [low, high].map((c) => ({ id: c as string, size: 7, servers: [hex(1)] })),
    );
    assert.deepEqual(store.replicaToAudit(hex(1), '0'.repeat(32)), { chunkId: low, size: 7 });
    assert.deepEqual(store.replicaToAudit(hex(1), '5'.repeat(32)), { chunkId: high, size: 7 });
    assert.deepEqual(store.replicaToAudit(hex(1), 'c'.repeat(32)), { chunkId: low, size: 7 });
    store.markReplicaCorrupt(low as string, hex(1));
    assert.deepEqual(
      store.replicaToAudit(hex(1), 'c'.repeat(32)),
      { chunkId: high, size: 7 },
      'corrupt ones are not audited',
    );
    assert.equal(store.replicaToAudit(hex(2), '0'.repeat(32)), undefined);
  } finally {
    store.close();
  }
});

test('every replica on a server is audited once in as many audits as it holds, however close their ids', async () => {
  const store = new SqliteStore(join(dir, 'cover.db'));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  const registry = new Registry(store, log, () => clock.now, 60_000, 600_000, 'http');
  const chunks = [1, 2, 3, 4, 5].map((n) => seededBytes(40 + n, 1024));
  const held = new Map(chunks.map((c) => [sha256Hex(c), c]));
  const server = await fakeFileServer(held);
  registerServers(store, [{ id: hex(1), url: server.url }], clock.now);
  commitChunks(
    store,
    1,
    [...held.keys()].map((id) => ({ id, size: 1024, servers: [hex(1)] })),
  );
  const auditor = auditorOn(store, registry, clock, {
    // The first pick starts just after the lowest id: a random start may fall anywhere.
    randomId: () => `${[...held.keys()].sort()[0]}0`,
  });
  try {
    for (let i = 0; i < held.size; i++) await auditor.runNow();
    assert.deepEqual(server.asked.map((a) => a.split('/').pop()).sort(), [...held.keys()].sort());
    assert.equal(auditor.tally(hex(1)).passed, held.size);
  } finally {
    await auditor.stop();
    server.server.close();
    store.close();
  }
});
