import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, test } from 'node:test';
import { MIGRATIONS } from '../../../src/main-server/store/migrations.js';
import type { NodeRecord, RekeyGrant, RekeyNode } from '../../../src/main-server/store/namespace-store.js';
import { releaseBlob, SqliteNamespaceStore } from '../../../src/main-server/store/sqlite-namespace-store.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';
import { commitChunks, registerServers } from '../../helpers/chunk-map.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (n: number, len = 32) => n.toString(16).padStart(len, '0');

/** User 101 may read node `n` (the grants the rotation tests revoke). */
function readGrant(ns: SqliteNamespaceStore, n: number): void {
  ns.putGrant({
    nodeId: hex(n),
    granteeId: hex(101),
    perm: 'read',
    sealedKey: 'k',
    sealedName: 'n',
    signature: 's',
    signedAt: null,
    grantedAt: 1,
  });
}
const server = (id: string) => ({
  id,
  url: `http://${id.slice(0, 4)}`,
  totalBytes: 100,
  freeBytes: 50,
  usedBytes: 10,
  chunkCount: 0,
  registeredAt: 1,
  lastHeartbeat: 1,
});

describe('SqliteStore', () => {
  let store: SqliteStore;
  let n = 0;
  beforeEach(() => {
    store?.close();
    store = new SqliteStore(join(dir, `s${n++}.db`));
  });

  test('migrations run once: reopening a database keeps its data and version', () => {
    const path = join(dir, 'reopen.db');
    const a = new SqliteStore(path);
    a.registerServer(server(hex(1)), 'key');
    a.close();
    const b = new SqliteStore(path);
    assert.equal(b.listServers().length, 1);
    assert.equal(b.db.pragma('user_version', { simple: true }), MIGRATIONS.length);
    b.close();
  });

  test("a server's word that it cannot read its free space is kept with its stats, across a restart of main, until a beat says otherwise", () => {
    const path = join(dir, 'free-unknown.db');
    const a = new SqliteStore(path);
    a.registerServer({ ...server(hex(1)), freeUnknown: true }, 'key');
    a.registerServer(server(hex(2)), 'key');
    assert.equal(a.getServer(hex(1))?.freeUnknown, true);
    assert.equal(a.getServer(hex(2))?.freeUnknown, undefined);
    a.close();
    const b = new SqliteStore(path);
    assert.equal(b.getServer(hex(1))?.freeUnknown, true, 'kept across a restart');
    b.heartbeat(hex(1), { totalBytes: 100, freeBytes: 40, usedBytes: 20, chunkCount: 1 }, 2);
    assert.equal(b.getServer(hex(1))?.freeUnknown, undefined, 'a beat that can read it clears it');
    b.heartbeat(
      hex(2),
      { totalBytes: 100, freeBytes: 40, usedBytes: 20, chunkCount: 1, freeUnknown: true },
      2,
    );
    assert.equal(b.getServer(hex(2))?.freeUnknown, true);
    b.close();
  });

  test('on macOS commits and checkpoints are synced with F_FULLFSYNC, which survives a power cut; elsewhere not asked for', () => {
    const mac = new SqliteStore(join(dir, 'darwin.db'), 'darwin');
    assert.equal(mac.db.pragma('fullfsync', { simple: true }), 1);
    assert.equal(mac.db.pragma('checkpoint_fullfsync', { simple: true }), 1);
    mac.close();
    const linux = new SqliteStore(join(dir, 'linux.db'), 'linux');
    assert.equal(linux.db.pragma('fullfsync', { simple: true }), 0);
    linux.close();
  });

  test('a server keeps its receipt key when it registers again', () => {
    store.registerServer(server(hex(1)), 'first-key');
    const again = store.registerServer({ ...server(hex(1)), url: 'http://moved' }, 'second-key');
    assert.equal(again.receiptKey, 'first-key');
    assert.equal(again.url, 'http://moved');
    assert.equal(
      store.heartbeat(hex(2), { totalBytes: 1, freeBytes: 1, usedBytes: 0, chunkCount: 0 }, 5),
      false,
    );
  });

  test('an id keeps the key it first enrolled with; ids that never registered are listed until they do or are removed', () => {
    assert.equal(store.enrolledKey(hex(1)), undefined);
    store.recordEnrolment(hex(1), 'key-a', 10);
    store.recordEnrolment(hex(1), 'key-b', 20); // another key changes nothing
    assert.equal(store.enrolledKey(hex(1)), 'key-a');
    store.recordEnrolment(hex(1), 'key-a', 25);
    store.recordEnrolment(hex(2), 'key-c', 15);
    assert.deepEqual(store.enrolledOnly(), [
      { id: hex(1), firstAt: 10, lastAt: 25 },
      { id: hex(2), firstAt: 15, lastAt: 15 },
    ]);
    store.registerServer(server(hex(1)), 'receipts');
    assert.equal(store.markRemoved(hex(2), 30), true);
    assert.equal(store.markRemoved(hex(2), 31), false, 'removed once');
    assert.deepEqual(store.enrolledOnly(), []);
    assert.equal(store.getServer(hex(2))?.removedAt, 30);
    assert.equal(store.getServer(hex(1))?.removedAt, 0);
  });

  test('a blob commit is all or nothing', () => {
    registerServers(store, [hex(1)], 1);
    store.createUpload({ id: hex(9), replicas: 1, createdAt: 0, expiresAt: 10 });
    const good = { id: hex(1, 64), size: 3, servers: [hex(1)] };
    // The second chunk names a server that does not exist: the foreign key fails mid-way.
    const bad = { id: hex(2, 64), size: 3, servers: [hex(7)] };
    assert.throws(() =>
      store.commitBlob({ id: hex(5), uploadId: hex(9), wanted: 1, createdAt: 1, chunks: [good, bad] }),
    );
    assert.equal(store.getBlob(hex(5)), undefined);
    assert.equal(store.repairCounts([], []).chunks, 0);
    assert.ok(store.getUpload(hex(9), 0));
  });

  test('a blob commit leaves a corrupt replica corrupt and records no copy that has a delete order queued', () => {
    for (const i of [1, 2, 3]) store.registerServer(server(hex(i)), 'k');
    const chunk = hex(1, 64);
    const commit = (n: number) =>
      commitChunks(store, 3, [{ id: chunk, size: 3, servers: [hex(1), hex(2), hex(3)] }], n);
    commit(0);
    store.markReplicaCorrupt(chunk, hex(1));
    // As the surplus trimmer leaves a copy it is deleting: out of the map, its order queued.
    store.db.prepare('DELETE FROM replicas WHERE chunk_id = ? AND server_id = ?').run(chunk, hex(2));
    store.db
      .prepare('INSERT INTO chunk_deletions (chunk_id, server_id, queued_at) VALUES (?, ?, 2)')
      .run(chunk, hex(2));
    commit(1);
    assert.deepEqual(store.replicasOf([chunk]).get(chunk), [hex(3)]);
    const state = store.db.prepare('SELECT state FROM replicas WHERE chunk_id = ? AND server_id = ?').pluck();
    assert.equal(state.get(chunk, hex(1)), 'corrupt');
    assert.equal(state.get(chunk, hex(2)), undefined);
    assert.deepEqual(store.pendingDeletions([hex(2)], 10, 3), [{ chunkId: chunk, serverId: hex(2) }]);
  });

  test('a copy with a delete order queued is not adopted when its server lists it: the order stands', () => {
    for (const i of [1, 2]) store.registerServer(server(hex(i)), 'k');
    const chunk = hex(1, 64);
    commitChunks(store, 2, [{ id: chunk, size: 3, servers: [hex(1)] }]);
    store.db
      .prepare('INSERT INTO chunk_deletions (chunk_id, server_id, queued_at) VALUES (?, ?, 2)')
      .run(chunk, hex(2));
    assert.deepEqual(store.applyChanges(hex(2), [chunk], [], 3), { adopted: 0, dropped: 0 });
    store.beginInventory(hex(2), 4, 4);
    store.addInventory(hex(2), [chunk]);
    store.finishInventory(hex(2), 10, 5);
    assert.deepEqual(store.replicasOf([chunk]).get(chunk), [hex(1)]);
    assert.deepEqual(store.barredFrom([chunk]).get(chunk)?.deleting, [hex(2)]);
    // Once the order is carried out, a copy the server lists again is adopted.
    store.deletionDone(chunk, hex(2));
    assert.deepEqual(store.applyChanges(hex(2), [chunk], [], 6), { adopted: 1, dropped: 0 });
  });

  test('the inventory comparison counts missing and extra chunks', () => {
    registerServers(store, [hex(1)], 1);
    commitChunks(
      store,
      1,
      [1, 2, 3].map((i) => ({ id: hex(i, 64), size: 1, servers: [hex(1)] })),
    );
    store.beginInventory(hex(1), 1000, 1000);
    store.addInventory(hex(1), [hex(1, 64), hex(4, 64)]);
    store.addInventory(hex(1), [hex(5, 64)]);
    const diff = store.finishInventory(hex(1), 10, 2000);
    assert.deepEqual([diff.missingCount, diff.extraCount], [2, 2]);
    assert.deepEqual(diff.missing.sort(), [hex(2, 64), hex(3, 64)]);
    assert.deepEqual(diff.extra.sort(), [hex(4, 64), hex(5, 64)]);
    assert.equal(store.getServer(hex(1))?.missingCount, 2);
  });

  test('an inventory is merged page by page: gaps spanning many pages are all found missing', () => {
    registerServers(store, [hex(1)], 1);
    const ids = Array.from({ length: 25_000 }, (_, i) => hex(i + 1, 64));
    commitChunks(
      store,
      1,
      ids.map((id) => ({ id, size: 1, servers: [hex(1)] })),
    );
    store.beginInventory(hex(1), 1000, 1000);
    // Only the first and last 100 are listed, in two batches, plus one unknown id at the end.
    store.addInventory(hex(1), ids.slice(0, 100));
    store.addInventory(hex(1), [...ids.slice(-100), 'f'.repeat(64)]);
    const diff = store.finishInventory(hex(1), 5, 2000);
    assert.deepEqual([diff.missingCount, diff.extraCount], [24_800, 1]);
    assert.deepEqual(diff.missing, ids.slice(100, 105));
    assert.equal(store.replicasOf([ids[100] as string]).get(ids[100] as string)?.length ?? 0, 0);
    assert.deepEqual(store.replicasOf([ids[24_999] as string]).get(ids[24_999] as string), [hex(1)]);
  });

  test('an inventory does not call missing a replica added after it began', () => {
    registerServers(store, [hex(1)], 1);
    store.beginInventory(hex(1), 1000, 1000);
    store.createUpload({ id: hex(9), replicas: 1, createdAt: 0, expiresAt: 10_000 });
    const chunks = [{ id: hex(1, 64), size: 1, servers: [hex(1)] }];
    store.commitBlob({ id: hex(5), uploadId: hex(9), wanted: 1, createdAt: 1500, chunks });
    const diff = store.finishInventory(hex(1), 10, 2000);
    assert.equal(diff.missingCount, 0);
    assert.deepEqual(store.replicasOf([hex(1, 64)]).get(hex(1, 64)), [hex(1)]);
    assert.equal(store.getServer(hex(1))?.inventoryAt, 2000);
  });

  test('a listing time long past spares recent replicas only: extras are seen, and old ones forgotten, as of the comparison', () => {
    store.registerServer(server(hex(1)), 'k');
    store.beginInventory(hex(1), 1000, 1000);
    store.addInventory(hex(1), [hex(1, 64)]);
    store.finishInventory(hex(1), 5, 1000);
    // A server naming a time before anything was recorded, listing another unknown chunk.
    store.beginInventory(hex(1), 0, 5000);
    store.addInventory(hex(1), [hex(2, 64)]);
    store.finishInventory(hex(1), 5, 5000);
    assert.deepEqual(
      store.db.prepare('SELECT chunk_id, first_seen, last_seen FROM extras WHERE server_id = ?').all(hex(1)),
      [{ chunk_id: hex(2, 64), first_seen: 5000, last_seen: 5000 }],
    );
  });

  test('heartbeat changes adopt known chunks, ignore unknown ones and drop lost replicas', () => {
    registerServers(store, [hex(1), hex(2)], 1);
    commitChunks(
      store,
      1,
      [1, 2].map((i) => ({ id: hex(i, 64), size: 1, servers: [hex(1)] })),
    );
    const r = store.applyChanges(hex(2), [hex(1, 64), hex(7, 64)], [], 5);
    assert.deepEqual(r, { adopted: 1, dropped: 0 });
    assert.deepEqual(store.applyChanges(hex(1), [], [hex(2, 64), hex(8, 64)], 6), { adopted: 0, dropped: 1 });
    const replicas = store.replicasOf([hex(1, 64), hex(2, 64), hex(7, 64)]);
    assert.deepEqual(replicas.get(hex(1, 64))?.sort(), [hex(1), hex(2)]);
    assert.deepEqual(replicas.get(hex(2, 64)) ?? [], []);
    assert.deepEqual(replicas.get(hex(7, 64)) ?? [], []);
  });

  test('due extras: an unknown chunk is queued for deletion, one that became known is only forgotten, one an upload placed waits another grace period', () => {
    store.registerServer(server(hex(1)), 'k');
    store.beginInventory(hex(1), 1000, 1000);
    // 1: never known; 2: committed after it was listed; 3: placed by an upload in progress.
    store.addInventory(hex(1), [hex(1, 64), hex(2, 64), hex(3, 64)]);
    assert.equal(store.finishInventory(hex(1), 5, 1000).extraCount, 3);
    store.createUpload({ id: hex(9), replicas: 1, createdAt: 0, expiresAt: 10_000 });
    store.commitBlob({
      id: hex(5),
      uploadId: hex(9),
      wanted: 1,
      createdAt: 1,
      chunks: [{ id: hex(2, 64), size: 1, servers: [] }],
    });
    store.createUpload({ id: hex(8), replicas: 1, createdAt: 0, expiresAt: 10_000 });
    store.recordPlacements(hex(8), [{ chunkId: hex(3, 64), serverIds: [hex(1)] }]);
    assert.equal(store.expireExtras(999, 2000), 0, 'none due before the grace period ends');
    assert.equal(store.expireExtras(1000, 2000), 1);
    assert.deepEqual(
      store.pendingDeletions([hex(1)], 10, 3000).map((d) => d.chunkId),
      [hex(1, 64)],
    );
    assert.equal(store.expireExtras(1000, 3000), 0, 'the placed one waits from now');
    assert.deepEqual(
      store.db.prepare('SELECT chunk_id, first_seen FROM extras').all(),
      [{ chunk_id: hex(3, 64), first_seen: 2000 }],
      'the known one is forgotten, the placed one kept with its grace restarted',
    );
  });

  test('a surplus copy of a chunk freed since is dropped when it comes due, never handed out', () => {
    for (const i of [1, 2, 3]) store.registerServer(server(hex(i)), 'k');
    store.createUpload({ id: hex(9), replicas: 2, createdAt: 0, expiresAt: 10 });
    const chunks = [{ id: hex(1, 64), size: 1, servers: [hex(1), hex(2), hex(3)] }];
    store.commitBlob({ id: hex(5), uploadId: hex(9), wanted: 2, createdAt: 1, chunks });
    const live = [1, 2, 3].map((i) => ({ id: hex(i), freeBytes: 50, returnedAt: 0 }));
    assert.equal(store.findSurplus(live, 100), 1);
    store.db.transaction(() => releaseBlob(store.db, hex(5), 150, 150))();
    assert.deepEqual(store.dueSurplus(200, 10), []);
    assert.equal(store.countSurplus(), 0);
  });

  test('due surplus copies and extras are read through indexes, oldest first, not by sorting the tables', () => {
    const plan = (sql: string) =>
      (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(0, 1) as { detail: string }[])
        .map((r) => r.detail)
        .join('; ');
    const surplus = plan(
      'SELECT s.chunk_id FROM surplus s LEFT JOIN chunks c ON c.id = s.chunk_id WHERE s.first_seen <= ? ORDER BY s.first_seen, s.chunk_id LIMIT ?',
    );
    assert.match(surplus, /surplus_by_age/);
    assert.doesNotMatch(surplus, /TEMP B-TREE/);
    const extras = plan(
      'SELECT e.chunk_id FROM extras e WHERE e.first_seen <= ? ORDER BY e.first_seen LIMIT ?',
    );
    assert.match(extras, /extras_by_age/);
    assert.doesNotMatch(extras, /TEMP B-TREE/);
  });

  test('copies beyond the wanted count are taken from a returned server first, and deleted only while enough proven copies remain', () => {
    registerServers(store, [hex(1), hex(2), hex(3)], 1);
    store.markReturned(hex(2), 50);
    commitChunks(store, 2, [{ id: hex(1, 64), size: 1, servers: [hex(1), hex(2), hex(3)] }]);
    const live = [1, 2, 3].map((i) => ({ id: hex(i), freeBytes: 50, returnedAt: i === 2 ? 50 : 0 }));
    assert.equal(store.findSurplus(live, 100), 1);
    assert.equal(store.findSurplus(live, 110), 0, 'a copy is noted once');
    assert.equal(store.countSurplus(), 1);
    const due = { chunkId: hex(1, 64), serverId: hex(2), size: 1, wanted: 2 };
    // Not yet past the grace period: nothing is due.
    assert.deepEqual(store.dueSurplus(99, 10), []);
    assert.deepEqual(store.dueSurplus(100, 10), [due]);
    // Only one of the copies kept could be read back: the copy on 2 is kept, and forgotten.
    assert.equal(store.trimSurplus(hex(1, 64), hex(2), [hex(1)], 130), false);
    assert.equal(store.countSurplus(), 0);
    assert.deepEqual(store.pendingDeletions([hex(1), hex(2), hex(3)], 10, 300), []);
    // A proof of the very copy being trimmed does not count for the ones kept.
    store.findSurplus(live, 200);
    assert.equal(store.trimSurplus(hex(1, 64), hex(2), [hex(1), hex(2)], 205), false);
    // Found again, and both kept copies read back whole: the copy on 2 goes.
    store.findSurplus(live, 200);
    assert.equal(store.trimSurplus(hex(1, 64), hex(2), [hex(1), hex(3)], 210), true);
    assert.deepEqual(store.pendingDeletions([hex(1), hex(2), hex(3)], 10, 300), [
      { chunkId: hex(1, 64), serverId: hex(2) },
    ]);
    assert.deepEqual(
      store
        .replicasOf([hex(1, 64)])
        .get(hex(1, 64))
        ?.sort(),
      [hex(1), hex(3)],
    );
  });

  test('chunks with fewer good replicas than wanted count as under-replicated', () => {
    registerServers(store, [hex(1)], 1);
    commitChunks(store, 3, [{ id: hex(1, 64), size: 1, servers: [hex(1)] }]);
    assert.deepEqual(store.repairCounts([hex(1)], [hex(1)]), {
      chunks: 1,
      underReplicated: 1,
      withoutLiveCopy: 0,
      upTo: hex(1, 64),
      end: true,
    });
    assert.equal(store.repairCounts([], []).underReplicated, 1);
    assert.deepEqual(store.underReplicated([hex(1)], [hex(1)], 10).chunks[0]?.holders, [hex(1)]);
    assert.deepEqual(store.underReplicated([hex(1)], [], 10), {
      chunks: [],
      withoutLiveCopy: 1,
      upTo: hex(1, 64),
      end: true,
    });
  });

  test('under-replicated chunks with no good copy on a live server never crowd the restorable ones out of a page', () => {
    const [live, down] = [hex(1), hex(2)];
    registerServers(store, [live, down], 1);
    // Older and worse off than the one that can be restored: three whose only copy is on
    // a server that is down, three whose only copy went corrupt.
    const chunk = (n: number, servers: string[]) => ({ id: hex(n, 64), size: 1, servers });
    commitChunks(
      store,
      2,
      [1, 2, 3].map((n) => chunk(n, [down])).concat([4, 5, 6].map((n) => chunk(n, [live]))),
    );
    for (const n of [4, 5, 6]) store.markReplicaCorrupt(hex(n, 64), live);
    commitChunks(store, 2, [chunk(7, [live])], 1);
    const page = store.underReplicated([live, down], [live], 2);
    assert.deepEqual(page.chunks, [{ id: hex(7, 64), size: 1, wanted: 2, holders: [live] }]);
    assert.equal(page.withoutLiveCopy, 6, 'the others are still counted');
    const { underReplicated, withoutLiveCopy } = store.repairCounts([live, down], [live]);
    assert.deepEqual([underReplicated, withoutLiveCopy], [7, 6], 'the queue counted whole');
  });

  test('the repair queue read a stretch of the map at a time finds each under-replicated chunk once, worst first within its stretch', () => {
    const [a, b, down] = [hex(1), hex(2), hex(3)];
    for (const s of [a, b, down]) store.registerServer(server(s), 'k');
    store.createUpload({ id: hex(9), replicas: 3, createdAt: 0, expiresAt: 10 });
    // Twelve chunks wanted three times: 3, 6, 9, 12 with one copy, 1, 4, 7, 10 with two,
    // 2 and 8 with all three, 5 and 11 only on a server that is down (no source).
    const holders = (n: number) =>
      n % 3 === 0 ? [a] : n % 3 === 1 ? [a, b] : n === 5 || n === 11 ? [down] : [a, b, down];
    const chunks = Array.from({ length: 12 }, (_, i) => ({
      id: hex(i + 1, 64),
      size: 1,
      servers: holders(i + 1),
    }));
    store.commitBlob({ id: hex(5), uploadId: hex(9), wanted: 3, createdAt: 1, chunks });
    const counted = [a, b, down];
    const stretches: ReturnType<SqliteStore['underReplicated']>[] = [];
    const previous = (s: ReturnType<SqliteStore['underReplicated']>) =>
      stretches[stretches.indexOf(s) - 1]?.upTo ?? '';
    for (let after = '', end = false; !end; ) {
      const stretch = store.underReplicated(counted, [a, b], 10, { after, span: 5 });
      stretches.push(stretch);
      ({ end, upTo: after } = stretch);
    }
    assert.deepEqual(
      stretches.map((s) => [s.upTo, s.end, s.withoutLiveCopy]),
      [
        [hex(5, 64), false, 1],
        [hex(10, 64), false, 0],
        [hex(12, 64), true, 1],
      ],
    );
    assert.deepEqual(
      stretches.map((s) => store.repairCounts(counted, [a, b], { after: previous(s), span: 5 })),
      [
        { chunks: 5, underReplicated: 4, withoutLiveCopy: 1, upTo: hex(5, 64), end: false },
        { chunks: 5, underReplicated: 4, withoutLiveCopy: 0, upTo: hex(10, 64), end: false },
        { chunks: 2, underReplicated: 2, withoutLiveCopy: 1, upTo: hex(12, 64), end: true },
      ],
      'the queue counted stretch by stretch, as it is read',
    );
    const found = stretches.flatMap((s) => s.chunks.map((c) => c.id));
    assert.deepEqual(
      found.toSorted(),
      [1, 3, 4, 6, 7, 9, 10, 12].map((n) => hex(n, 64)),
      'every short chunk with a source, each once',
    );
    assert.deepEqual(
      stretches.map((s) => s.chunks.map((c) => c.holders.length)),
      [[1, 2, 2], [1, 1, 2, 2], [1]],
      'those with fewest copies first in each stretch',
    );
    const page = store.underReplicated(counted, [a, b], 1, { after: '', span: 5 });
    assert.deepEqual(
      page.chunks.map((c) => c.id),
      [hex(3, 64)],
      'a page smaller than the stretch holds its worst',
    );
    assert.deepEqual(store.underReplicated(counted, [a, b], 10, { after: hex(12, 64), span: 5 }), {
      chunks: [],
      withoutLiveCopy: 0,
      upTo: '',
      end: true,
    });
  });

  test('copies beyond the wanted count are found a stretch of the map at a time, each stretch its own', () => {
    for (const i of [1, 2, 3]) store.registerServer(server(hex(i)), 'k');
    store.createUpload({ id: hex(9), replicas: 2, createdAt: 0, expiresAt: 10 });
    // Six chunks wanted twice; the odd ones have a copy too many.
    const chunks = [1, 2, 3, 4, 5, 6].map((n) => ({
      id: hex(n, 64),
      size: 1,
      servers: n % 2 ? [hex(1), hex(2), hex(3)] : [hex(1), hex(2)],
    }));
    store.commitBlob({ id: hex(5), uploadId: hex(9), wanted: 2, createdAt: 1, chunks });
    const live = [1, 2, 3].map((i) => ({ id: hex(i), freeBytes: 50, returnedAt: 0 }));
    assert.equal(store.findSurplus(live, 100, { after: '', upTo: hex(3, 64) }), 2, 'chunks 1 and 3');
    assert.equal(store.findSurplus(live, 100, { after: hex(3, 64), upTo: hex(6, 64) }), 1, 'chunk 5');
    assert.equal(store.findSurplus(live, 100), 0, 'the whole map holds no more');
    assert.equal(store.countSurplus(), 3);
  });

  test('an expired upload queues its placed, uncommitted chunks for deletion', () => {
    registerServers(store, [hex(1)], 1);
    store.createUpload({ id: hex(9), replicas: 1, createdAt: 0, expiresAt: 10 });
    store.recordPlacements(hex(9), [{ chunkId: hex(1, 64), serverIds: [hex(1)] }]);
    assert.equal(store.expireUploads(5), 0);
    assert.equal(store.expireUploads(11), 1);
    assert.deepEqual(store.pendingDeletions([hex(1)], 10, 20), [{ chunkId: hex(1, 64), serverId: hex(1) }]);
    store.deletionDone(hex(1, 64), hex(1));
    assert.deepEqual(store.pendingDeletions([hex(1)], 10, 20), []);
  });

  test('restored replicas are recorded for the chunks still in the map; one freed while it was copied is left out, not an error', () => {
    const s = new SqliteStore(join(dir, 'restored.db'));
    registerServers(s, [hex(1), hex(2)], 1);
    commitChunks(s, 2, [{ id: hex(7, 64), size: 3, servers: [hex(1)] }]);
    s.addReplicas(
      [
        { chunkId: hex(7, 64), serverId: hex(2) },
        { chunkId: hex(8, 64), serverId: hex(2) },
      ],
      5,
    );
    assert.deepEqual(
      s
        .replicasOf([hex(7, 64), hex(8, 64)])
        .get(hex(7, 64))
        ?.sort(),
      [hex(1), hex(2)],
    );
    assert.deepEqual(s.replicasOf([hex(8, 64)]).get(hex(8, 64)), []);
    s.close();
  });
});

describe('SqliteNamespaceStore', () => {
  const db = () => new SqliteStore(join(dir, `ns-${Math.random()}.db`));
  const node = (id: number, parent: number | null, kind: 'dir' | 'file', mac: number | null): NodeRecord => ({
    id: hex(id),
    ownerId: hex(100),
    parentId: parent === null ? null : hex(parent),
    kind,
    nameMac: mac === null ? null : hex(mac, 64),
    nameEnc: mac === null ? null : 'enc',
    wrappedKey: mac === null ? null : 'wrap',
    versionId: null,
    size: 0,
    createdAt: 1,
    modifiedAt: 1,
  });
  const user = {
    id: hex(100),
    name: 'u',
    signKey: 'a'.repeat(43),
    boxKey: 'b'.repeat(43),
    admin: true,
    rootId: hex(1),
    rootSealed: 'sealed',
    createdAt: 1,
  };

  test('names are unique within a folder (by MAC), and a taken user name is refused', () => {
    const s = db();
    const ns = new SqliteNamespaceStore(s.db);
    ns.createUser(user, node(1, null, 'dir', null));
    ns.createNode(node(2, 1, 'dir', 7));
    assert.throws(() => ns.createNode(node(3, 1, 'file', 7)), { code: 'SEDFS_ERR_EXISTS' });
    assert.throws(
      () => ns.createUser({ ...user, id: hex(101), rootId: hex(50) }, node(50, null, 'dir', null)),
      {
        code: 'SEDFS_ERR_USER_EXISTS',
      },
    );
    s.close();
  });

  /** A store holding `user` (home 1) and user v (id 101, home 60). */
  const withTwoUsers = () => {
    const s = db();
    const ns = new SqliteNamespaceStore(s.db);
    ns.createUser(user, node(1, null, 'dir', null));
    ns.createUser({ ...user, id: hex(101), name: 'v', rootId: hex(60) }, node(60, null, 'dir', null));
    return { s, ns };
  };

  test('a node id in use, and re-encrypted names that clash in a folder, are refused as SEDFS_ERR_EXISTS, not as a database error, after the grant is gone', () => {
    const { s, ns } = withTwoUsers();
    ns.createNode(node(2, 1, 'dir', 2));
    ns.createNode(node(3, 2, 'file', 3));
    ns.createNode(node(4, 2, 'file', 4));
    assert.throws(() => ns.createNode(node(2, 60, 'dir', 5)), {
      code: 'SEDFS_ERR_EXISTS',
      message: 'that node id is already in use',
    });
    readGrant(ns, 2);
    assert.equal(ns.revoke(hex(2), hex(101), 4), hex(2));
    assert.equal(ns.grantsTo(hex(101)).length, 0, 'revoked before any key is replaced');
    const clashing = { wrappedKey: 'w2', nameEnc: 'e2', nameMac: hex(9, 64) };
    ns.stageRekey(
      hex(2),
      hex(77),
      [
        { id: hex(2), wrappedKey: 'w2' },
        { id: hex(3), ...clashing },
        { id: hex(4), ...clashing },
      ],
      [],
    );
    assert.throws(() => ns.applyRekey(hex(2), hex(77), 5), { code: 'SEDFS_ERR_EXISTS' });
    assert.equal(ns.rotationOnPath(hex(3)), hex(2), 'nothing of the re-key was kept: it is still pending');
    assert.equal(ns.getNode(hex(3))?.wrappedKey, node(3, 2, 'file', 3).wrappedKey);
    s.close();
  });

  test('a revocation under a pending key rotation joins it, one above takes in those below, and removing the folder ends it', () => {
    const { s, ns } = withTwoUsers();
    ns.createNode(node(2, 1, 'dir', 2));
    ns.createNode(node(3, 2, 'dir', 3));
    ns.createNode(node(4, 3, 'dir', 4));
    for (const n of [2, 3, 4]) readGrant(ns, n);
    assert.equal(ns.revoke(hex(3), hex(101), 1), hex(3));
    assert.equal(ns.revoke(hex(4), hex(101), 2), hex(3), 'below a pending rotation: part of it');
    assert.equal(ns.revoke(hex(2), hex(101), 3), hex(2));
    assert.deepEqual(
      ns.rotationsOf(user.id).map((r) => r.rootId),
      [hex(2)],
    );
    assert.equal(ns.rotationOnPath(hex(4)), hex(2));
    assert.equal(ns.rotationOnPath(hex(1)), undefined);
    assert.equal(ns.revoke(hex(2), hex(101), 4), undefined, 'no grant left: nothing to revoke');
    assert.deepEqual(ns.grantsTo(hex(101)), []);
    ns.stageRekey(hex(2), hex(77), [{ id: hex(2), wrappedKey: 'w2' }], []);
    ns.deleteNode(hex(2), 5);
    assert.deepEqual(ns.rotationsOf(user.id), []);
    assert.equal(s.db.prepare('SELECT count(*) FROM rotation_nodes').pluck().get(), 0);
    s.close();
  });

  test('a signup with an unknown invite leaves no user behind', () => {
    const s = db();
    const ns = new SqliteNamespaceStore(s.db);
    assert.throws(() => ns.createUser(user, node(1, null, 'dir', null), 'no-such-invite'), {
      code: 'SEDFS_ERR_INVITE_REQUIRED',
    });
    assert.equal(ns.countUsers(), 0);
    assert.equal(ns.getNode(hex(1)), undefined);
    s.close();
  });

  test('deleting a folder removes its subtree and queues the chunks only it used, sent once the freed grace is over', () => {
    const s = db();
    // Readers given those chunks before may fetch them for 1,000 ms more.
    const ns = new SqliteNamespaceStore(s.db, 1000);
    registerServers(s, [hex(200)], 1);
    ns.createUser(user, node(1, null, 'dir', null));
    ns.createNode(node(2, 1, 'dir', 2));
    s.createUpload({ id: hex(9), replicas: 1, createdAt: 0, expiresAt: 10 });
    const blob = {
      id: hex(30),
      uploadId: hex(9),
      wanted: 1,
      createdAt: 2,
      chunks: [{ id: hex(1, 64), size: 5, servers: [hex(200)] }],
    };
    ns.commitVersion(
      { kind: 'new', node: node(3, 2, 'file', 3) },
      {
        id: hex(40),
        nodeId: hex(3),
        blobId: hex(30),
        size: 5,
        chunkBytes: 4,
        contentKey: 'ck',
        createdAt: 2,
      },
      () => s.commitBlob(blob),
    );
    assert.equal(ns.getNode(hex(3))?.versionId, hex(40));
    assert.ok(ns.isAncestor(hex(1), hex(3)));
    assert.ok(!ns.isAncestor(hex(3), hex(1)));
    ns.deleteNode(hex(2), 3);
    assert.equal(ns.getNode(hex(2)), undefined);
    assert.equal(ns.getNode(hex(3)), undefined);
    assert.equal(s.repairCounts([], []).chunks, 0);
    assert.deepEqual(s.pendingDeletions([hex(200)], 10, 1002), [], 'not before the grace is over');
    assert.deepEqual(s.pendingDeletions([hex(200)], 10, 1003), [{ chunkId: hex(1, 64), serverId: hex(200) }]);
    s.close();
  });

  test('a re-key made from a version that is no longer current is refused, and keeps nothing', () => {
    const { s, ns } = withTwoUsers();
    registerServers(s, [hex(200)], 1);
    ns.createNode(node(2, 1, 'dir', 2));
    s.createUpload({ id: hex(9), replicas: 1, createdAt: 0, expiresAt: 10 });
    const version = (v: number, target: Parameters<typeof ns.commitVersion>[0]) =>
      ns.commitVersion(
        target,
        {
          id: hex(v),
          nodeId: hex(3),
          blobId: hex(v + 10),
          size: 5,
          chunkBytes: 4,
          contentKey: `ck${v}`,
          createdAt: 2,
        },
        () =>
          s.commitBlob({
            id: hex(v + 10),
            uploadId: hex(9),
            wanted: 1,
            createdAt: 2,
            chunks: [{ id: hex(v, 64), size: 5, servers: [hex(200)] }],
          }),
      );
    version(40, { kind: 'new', node: node(3, 2, 'file', 3) });
    readGrant(ns, 2);
    // The owner read the subtree at version 40; version 41 landed before the re-key did.
    version(41, { kind: 'existing', nodeId: hex(3) });
    assert.equal(ns.revoke(hex(2), hex(101), 4), hex(2));
    let attempts = 80;
    let replacing: string | null = null;
    const rekey = (versionId: string, expectWrappedKey?: string) => {
      const attempt = hex(attempts++);
      ns.stageRekey(
        hex(2),
        attempt,
        [
          { id: hex(2), wrappedKey: 'w2' },
          {
            id: hex(3),
            wrappedKey: 'w3',
            nameEnc: 'e3',
            nameMac: hex(3, 64),
            contentKey: 'rewrapped',
            versionId,
            ...(expectWrappedKey ? { expectWrappedKey } : {}),
          },
        ],
        [],
        replacing,
      );
      replacing = attempt;
      return ns.applyRekey(hex(2), attempt, 5);
    };
    assert.throws(() => rekey(hex(40)), { code: 'SEDFS_ERR_VERSION_CONFLICT', message: /new version/ });
    // A node moved or renamed after the client read it (its wrapped key is not the one read).
    assert.throws(() => rekey(hex(41), 'what it was before a move'), {
      code: 'SEDFS_ERR_VERSION_CONFLICT',
      message: /moved or renamed/,
    });
    assert.equal(ns.rotationOnPath(hex(3)), hex(2), 'nothing of the re-key was kept: it is still pending');
    assert.equal(ns.getNode(hex(3))?.wrappedKey, node(3, 2, 'file', 3).wrappedKey);
    assert.equal(rekey(hex(41)), 2);
    assert.equal(ns.getVersion(hex(41))?.contentKey, 'rewrapped');
    assert.equal(ns.getNode(hex(3))?.wrappedKey, 'w3');
    assert.equal(ns.rotationOnPath(hex(3)), undefined, 'the rotation is over');
    s.close();
  });

  test('a re-key that leaves out a node or a grant of the subtree, adds one from elsewhere, or lacks a new name is refused, and keeps nothing', () => {
    const { s, ns } = withTwoUsers();
    ns.createNode(node(2, 1, 'dir', 2));
    ns.createNode(node(3, 2, 'file', 3));
    ns.createNode(node(4, 2, 'dir', 4));
    ns.createNode(node(5, 1, 'dir', 5));
    readGrant(ns, 2);
    readGrant(ns, 4);
    assert.equal(ns.revoke(hex(2), hex(101), 4), hex(2));
    const named = (n: number) => ({
      id: hex(n),
      wrappedKey: `w${n}`,
      nameEnc: `e${n}`,
      nameMac: hex(n + 50, 64),
    });
    const all = [{ id: hex(2), wrappedKey: 'w2' }, named(3), named(4)];
    const grant = { nodeId: hex(4), granteeId: hex(101), sealedKey: 'k4', signature: 's4', signedAt: 44 };
    let attempts = 80;
    let replacing: string | null = null;
    const rekey = (nodes: RekeyNode[], grants: RekeyGrant[]) => {
      const attempt = hex(attempts++);
      ns.stageRekey(hex(2), attempt, nodes, grants, replacing);
      replacing = attempt;
      return ns.applyRekey(hex(2), attempt, 5);
    };
    const refused = (nodes: RekeyNode[], grants: RekeyGrant[], why: RegExp) =>
      assert.throws(() => rekey(nodes, grants), { code: 'SEDFS_ERR_VERSION_CONFLICT', message: why });
    refused(all.slice(0, 2), [grant], /node count/);
    refused([...all, named(5)], [grant], /node count/);
    refused([all[0] as RekeyNode, named(3), named(5)], [grant], /node count/);
    refused(all, [], /grants/);
    refused(all, [{ ...grant, nodeId: hex(3) }], /grants/);
    refused(all, [grant, { ...grant, nodeId: hex(3) }], /grants/);
    refused([all[0] as RekeyNode, named(3), { id: hex(4), wrappedKey: 'w4' }], [grant], /missing name/);
    assert.equal(ns.rotationOnPath(hex(3)), hex(2), 'still pending');
    assert.equal(ns.getNode(hex(4))?.wrappedKey, node(4, 2, 'dir', 4).wrappedKey, 'no key was replaced');
    assert.equal(rekey(all, [grant]), 3);
    assert.equal(ns.getNode(hex(4))?.wrappedKey, 'w4');
    assert.deepEqual(
      ns.grantsTo(hex(101)).map((g) => [g.sealedKey, g.sealedName, g.signature, g.signedAt]),
      [['k4', 'n', 's4', 44]],
      "the grant's key is replaced with its new signature and time, its name kept",
    );
    assert.equal(ns.rotationOnPath(hex(3)), undefined, 'the rotation is over');
    s.close();
  });

  test('taking a lock drops the locks that have expired and keeps the live ones', () => {
    const s = db();
    const ns = new SqliteNamespaceStore(s.db);
    ns.createUser(user, node(1, null, 'dir', null));
    for (const n of [2, 3, 4]) ns.createNode(node(n, 1, 'file', n));
    ns.setLock({ nodeId: hex(2), holderId: user.id, expiresAt: 10 }, 1);
    ns.setLock({ nodeId: hex(3), holderId: user.id, expiresAt: 100 }, 1);
    const rows = () =>
      (s.db.prepare('SELECT node_id FROM locks ORDER BY node_id').pluck().all() as string[]).map((id) =>
        id.slice(-2),
      );
    assert.deepEqual(rows(), ['02', '03']);
    ns.setLock({ nodeId: hex(4), holderId: user.id, expiresAt: 200 }, 50);
    assert.deepEqual(rows(), ['03', '04'], 'the lock that expired at 10 is gone by 50');
    s.close();
  });

  test("the locks a user holds in a folder are found on the folder itself and at any depth below it, and no one else's or outside it", () => {
    const s = db();
    const ns = new SqliteNamespaceStore(s.db);
    ns.createUser(user, node(1, null, 'dir', null));
    ns.createNode(node(2, 1, 'dir', 2));
    ns.createNode(node(3, 2, 'dir', 3));
    ns.createNode(node(4, 3, 'file', 4));
    ns.createNode(node(5, 1, 'file', 5));
    ns.createNode(node(6, 2, 'file', 6));
    const other = hex(101);
    ns.createUser({ ...user, id: other, name: 'v', rootId: hex(60) }, node(60, null, 'dir', null));
    for (const n of [2, 4, 5]) ns.setLock({ nodeId: hex(n), holderId: user.id, expiresAt: 100 }, 1);
    ns.setLock({ nodeId: hex(6), holderId: other, expiresAt: 100 }, 1);
    const held = (root: number, holder: string, now = 10) =>
      ns
        .locksHeldIn(hex(root), holder, now)
        .map((l) => l.nodeId.slice(-2))
        .sort();
    assert.deepEqual(held(2, user.id), ['02', '04']);
    assert.deepEqual(held(3, user.id), ['04']);
    assert.deepEqual(held(2, other), ['06']);
    assert.deepEqual(held(2, user.id, 100), [], 'expired locks are not held');
    s.close();
  });

  test('a version commit that fails leaves neither the node nor the blob', () => {
    const s = db();
    const ns = new SqliteNamespaceStore(s.db);
    ns.createUser(user, node(1, null, 'dir', null));
    ns.createNode(node(2, 1, 'file', 9));
    s.createUpload({ id: hex(9), replicas: 1, createdAt: 0, expiresAt: 10 });
    const blob = { id: hex(30), uploadId: hex(9), wanted: 1, createdAt: 2, chunks: [] };
    // Same name MAC as the existing file: the insert fails after the blob was written.
    assert.throws(
      () =>
        ns.commitVersion(
          { kind: 'new', node: node(3, 1, 'file', 9) },
          {
            id: hex(40),
            nodeId: hex(3),
            blobId: hex(30),
            size: 0,
            chunkBytes: 4,
            contentKey: 'ck',
            createdAt: 2,
          },
          () => s.commitBlob(blob),
        ),
      { code: 'SEDFS_ERR_EXISTS' },
    );
    assert.equal(s.getBlob(hex(30)), undefined);
    assert.equal(ns.getNode(hex(3)), undefined);
    assert.ok(s.getUpload(hex(9), 0), 'the upload can still be committed another way');
    s.close();
  });

  test('a subtree read a page at a time gives every node once, each folder before what is in it, with its grants, whatever the page size', () => {
    const { s, ns } = withTwoUsers();
    // Folder 2 holds empty folders, a deep chain, files between folders, and one
    // folder with more children than a page: the shapes a cursor can stop inside.
    const parentOf = new Map<number, number>([[2, 1]]);
    const add = (id: number, parent: number, kind: 'dir' | 'file') => {
      // MACs out of id order, so that name-MAC order is not creation order.
      ns.createNode(node(id, parent, kind, (id * 7919) % 10007));
      parentOf.set(id, parent);
    };
    ns.createNode(node(2, 1, 'dir', 2));
    let id = 10;
    for (let d = 0; d < 4; d++) {
      const dir = id++;
      add(dir, 2, 'dir');
      if (d === 1) for (let k = 0; k < 7; k++) add(id++, dir, 'file');
      if (d === 2) for (let p = dir, k = 0; k < 5; k++, p = id - 1) add(id++, p, 'dir');
      add(id++, 2, 'file');
    }
    for (const n of [2, 11, 13]) readGrant(ns, n);
    const all = [...parentOf.keys()].map((n) => hex(n)).sort();
    for (const limit of [1, 2, 3, 5, 100]) {
      const seen: string[] = [];
      const grants: string[] = [];
      const path: string[] = [];
      let after: string | undefined;
      let pages = 0;
      do {
        const page = ns.subtreePage(hex(2), after, limit);
        pages++;
        assert.ok(pages <= all.length + 1, `limit ${limit}: the pages do not end`);
        assert.ok(page.nodes.length <= limit);
        for (const n of page.nodes) {
          // Pre-order: the node's folder is one of the folders on the way to it.
          if (seen.length > 0) {
            while (path.length > 0 && path[path.length - 1] !== n.parentId) path.pop();
            assert.ok(path.length > 0, `limit ${limit}: ${n.id} came after its folder was left`);
          }
          if (n.kind === 'dir') path.push(n.id);
          seen.push(n.id);
        }
        grants.push(...page.grants.map((g) => g.nodeId));
        after = page.next;
      } while (after);
      assert.deepEqual([...seen].sort(), all, `limit ${limit}: every node once`);
      assert.deepEqual(grants.sort(), [hex(11), hex(13), hex(2)].sort());
      assert.ok(pages >= Math.ceil(all.length / limit));
    }
    assert.throws(() => ns.subtreePage(hex(2), hex(60), 5), { code: 'SEDFS_ERR_BAD_REQUEST' });
    assert.throws(() => ns.subtreePage(hex(2), hex(999), 5), { code: 'SEDFS_ERR_BAD_REQUEST' });
    assert.throws(() => ns.subtreePage(hex(11), hex(2), 5), { code: 'SEDFS_ERR_BAD_REQUEST' });
    s.close();
  });

  test('an attempt at a key rotation takes it over only from the attempt it names: a part of one taken over is refused and drops nothing', () => {
    const { s, ns } = withTwoUsers();
    ns.createNode(node(2, 1, 'dir', 2));
    ns.createNode(node(3, 2, 'file', 3));
    readGrant(ns, 2);
    ns.revoke(hex(2), hex(101), 4);
    const first = (id: number) => ({ id: hex(id), wrappedKey: `w${id}` });
    const second = { id: hex(3), wrappedKey: 'w3', nameEnc: 'e', nameMac: hex(8, 64) };
    const [A, B, C] = [hex(71), hex(72), hex(73)];
    const state = () => ns.rotationsOf(hex(100)).map((r) => [r.attempt, r.parts]);
    ns.stageRekey(hex(2), A, [first(2)], [], null);
    assert.deepEqual(state(), [[A, 1]]);
    // B saw no attempt begun (read before A's first part): refused, A's part kept.
    assert.throws(() => ns.stageRekey(hex(2), B, [first(2)], [], null), {
      code: 'SEDFS_ERR_REKEY_TAKEN_OVER',
    });
    assert.deepEqual(state(), [[A, 1]]);
    // C saw A: it takes over, and A's next part is refused.
    ns.stageRekey(hex(2), C, [first(2)], [], A);
    assert.throws(() => ns.stageRekey(hex(2), A, [second], []), { code: 'SEDFS_ERR_REKEY_TAKEN_OVER' });
    assert.throws(() => ns.stageRekey(hex(2), B, [second], [], A), { code: 'SEDFS_ERR_REKEY_TAKEN_OVER' });
    ns.stageRekey(hex(2), C, [second], []);
    assert.deepEqual(state(), [[C, 2]]);
    assert.equal(ns.applyRekey(hex(2), C, 5), 2);
    assert.deepEqual(state(), []);
    assert.equal(ns.getNode(hex(3))?.wrappedKey, 'w3');
    s.close();
  });
});
