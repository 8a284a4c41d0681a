import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { receiptFor } from '../../../src/crypto/receipts.js';
import { generateTicketKeyPem, ticketSigner, ticketVerifier, uploadOf } from '../../../src/crypto/tickets.js';
import { BlobService } from '../../../src/main-server/blob-service.js';
import { Registry } from '../../../src/main-server/registry.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';
import type { Placement } from '../../../src/protocol/main-api.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-blobs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (n: number, len = 32) => n.toString(16).padStart(len, '0');
const stats = { totalBytes: 100, freeBytes: 50, usedBytes: 10, chunkCount: 0 };

test("a user's bad-replica reports are bounded: only good replicas main records, then a burst, then so many a minute", () => {
  const store = new SqliteStore(join(dir, 'reports.db'));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  const blobs = new BlobService(
    store,
    new Registry(store, log, () => clock.now, 2000, 600_000, 'http'),
    ticketSigner(generateTicketKeyPem()),
    log,
    () => clock.now,
    Math.random,
    { replicas: 1, ticketTtlMs: 60_000, uploadTtlMs: 60_000 },
  );
  const [holder, other] = [hex(1), hex(2)];
  for (const id of [holder, other])
    store.registerServer({ id, url: 'http://x', ...stats, registeredAt: 1, lastHeartbeat: clock.now }, 'k');
  store.createUpload({ id: hex(9), replicas: 1, createdAt: 0, expiresAt: 10 });
  const chunk = hex(5, 64);
  store.commitBlob({
    id: hex(5),
    uploadId: hex(9),
    wanted: 1,
    createdAt: 1,
    chunks: [{ id: chunk, size: 1, servers: [holder] }],
  });
  const [alice, bob] = [hex(50), hex(51)];

  assert.equal(blobs.reportBadReplica(alice, chunk, other), false, 'no replica there: nothing to re-check');
  assert.equal(blobs.reportBadReplica(alice, hex(6, 64), holder), false, 'an unknown chunk');
  const accepted = Array.from({ length: 100 }, () => blobs.reportBadReplica(alice, chunk, holder));
  assert.equal(accepted.filter(Boolean).length, 32, 'a burst of 32');
  assert.equal(blobs.reportBadReplica(bob, chunk, holder), true, "another user's allowance is their own");
  clock.now += 2_000; // 30 a minute: one more
  assert.equal(blobs.reportBadReplica(alice, chunk, holder), true);
  assert.equal(blobs.reportBadReplica(alice, chunk, holder), false);
  store.close();
});

const clock0 = 1_000_000;

/** Main's blob service over a fresh store, on the test's clock, with `servers` live and each one's receipt key. */
function serviceWith(name: string, servers: string[], replicas: number) {
  const store = new SqliteStore(join(dir, `${name}.db`));
  const clock = { now: clock0 };
  const log = pino({ level: 'silent' });
  const signer = ticketSigner(generateTicketKeyPem());
  const blobs = new BlobService(
    store,
    new Registry(store, log, () => clock.now, 2000, 600_000, 'http'),
    signer,
    log,
    () => clock.now,
    Math.random,
    { replicas, ticketTtlMs: 60_000, uploadTtlMs: 60_000 },
  );
  const keys = new Map(servers.map((id, i) => [id, Buffer.alloc(32, i + 1).toString('base64url')]));
  for (const id of servers)
    store.registerServer(
      { id, url: 'http://x', ...stats, registeredAt: 1, lastHeartbeat: clock.now },
      keys.get(id) as string,
    );
  const verify = ticketVerifier(signer.publicKeyPem);
  /** Places `chunk` in a new upload and has every server it was placed on answer the write, as a file server does. */
  const write = (chunk: string, size: number, uploadId = blobs.begin(replicas, 'bob').uploadId) => {
    const [p] = blobs.place(uploadId, { chunks: [{ id: chunk, size }] }, 'bob').placements;
    const placement = p as Placement;
    const receipts = placement.servers.map((s) => {
      const ticket = verify(placement.ticket, { op: 'write', chunk, server: s.id, now: clock.now });
      return {
        server: s.id,
        receipt: receiptFor(keys.get(s.id) as string, s.id, chunk, size, uploadOf(ticket)),
      };
    });
    return { uploadId, servers: placement.servers.map((s) => s.id), receipts };
  };
  return { store, blobs, keys, write };
}

test('a receipt counts only in the commit of the upload it was written for: one kept from an earlier upload cannot put back a replica the server lost', () => {
  const s = hex(1);
  const { store, blobs, write } = serviceWith('replay', [s], 1);
  const chunk = hex(5, 64);
  const first = write(chunk, 10);
  blobs.commit(first.uploadId, { chunks: [{ id: chunk, size: 10, receipts: first.receipts }] }, 'bob');
  assert.deepEqual(store.replicasOf([chunk]).get(chunk), [s]);
  // The server reports the copy gone (lost, or quarantined by its scrubber).
  store.applyChanges(s, [], [chunk], clock0 + 1);
  // The same receipt again, in an upload that placed nothing and in one that placed the chunk there.
  const bare = blobs.begin(1, 'bob').uploadId;
  const placed = write(chunk, 10).uploadId;
  for (const uploadId of [bare, placed])
    assert.throws(
      () => blobs.commit(uploadId, { chunks: [{ id: chunk, size: 10, receipts: first.receipts }] }, 'bob'),
      { code: 'SEDFS_ERR_RECEIPT_INVALID' },
    );
  assert.deepEqual(store.replicasOf([chunk]).get(chunk), [], 'still no replica');
  store.close();
});

test('a commit takes a receipt only from a server its upload placed the chunk on', () => {
  const [a, b] = [hex(1), hex(2)];
  const { store, blobs, keys, write } = serviceWith('unplaced', [a, b], 1);
  const chunk = hex(6, 64);
  const w = write(chunk, 10);
  const other = w.servers[0] === a ? b : a;
  // Good for this upload, chunk and size, but from a server the chunk was never placed on.
  const stray = {
    server: other,
    receipt: receiptFor(keys.get(other) as string, other, chunk, 10, w.uploadId),
  };
  assert.throws(
    () =>
      blobs.commit(
        w.uploadId,
        { chunks: [{ id: chunk, size: 10, receipts: [...w.receipts, stray] }] },
        'bob',
      ),
    { code: 'SEDFS_ERR_RECEIPT_INVALID' },
  );
  blobs.commit(w.uploadId, { chunks: [{ id: chunk, size: 10, receipts: w.receipts }] }, 'bob');
  assert.deepEqual(store.replicasOf([chunk]).get(chunk), w.servers);
  store.close();
});

test("a commit's receipts never turn a replica main holds corrupt back to ok nor cancel a copy's delete order; a chunk with no good copy left is refused", () => {
  const servers = [hex(1), hex(2), hex(3)];
  const [corrupt, deleting, good] = servers as [string, string, string];
  const { store, blobs, write } = serviceWith('barred', servers, 3);
  const chunk = hex(7, 64);
  const first = write(chunk, 10);
  blobs.commit(first.uploadId, { chunks: [{ id: chunk, size: 10, receipts: first.receipts }] }, 'bob');
  // Placed on all three again before main found one copy corrupt and queued another's deletion.
  const again = write(chunk, 10);
  assert.deepEqual([...again.servers].sort(), servers, 'placed on all three again');
  store.markReplicaCorrupt(chunk, corrupt);
  // As the surplus trimmer leaves a copy it is deleting: out of the map, its order queued.
  store.db.prepare('DELETE FROM replicas WHERE chunk_id = ? AND server_id = ?').run(chunk, deleting);
  store.db
    .prepare('INSERT INTO chunk_deletions (chunk_id, server_id, queued_at) VALUES (?, ?, 1)')
    .run(chunk, deleting);
  const res = blobs.commit(
    again.uploadId,
    { chunks: [{ id: chunk, size: 10, receipts: again.receipts }] },
    'bob',
  );
  assert.equal(res.underReplicated, 1, 'only the good copy counts');
  assert.deepEqual(store.replicasOf([chunk]).get(chunk), [good]);
  const state = (server: string) =>
    store.db
      .prepare('SELECT state FROM replicas WHERE chunk_id = ? AND server_id = ?')
      .pluck()
      .get(chunk, server);
  assert.equal(state(corrupt), 'corrupt');
  assert.equal(state(deleting), undefined);
  const queued = store.db.prepare(
    'SELECT count(*) FROM chunk_deletions WHERE chunk_id = ? AND server_id = ?',
  );
  assert.equal(queued.pluck().get(chunk, deleting), 1, 'the order stands');

  const last = write(chunk, 10);
  assert.deepEqual(last.servers, [good], 'placed only where a copy counts');
  store.markReplicaCorrupt(chunk, good);
  assert.throws(
    () => blobs.commit(last.uploadId, { chunks: [{ id: chunk, size: 10, receipts: last.receipts }] }, 'bob'),
    { code: 'SEDFS_ERR_RECEIPT_INVALID' },
  );
  store.close();
});

test('placement skips the servers holding a corrupt copy of a chunk or a delete order for it, so every receipt of a commit counts; with only those left it is refused, to be tried again later', () => {
  const servers = [hex(1), hex(2), hex(3), hex(4)];
  const [corrupt, deleting, free1, free2] = servers as [string, string, string, string];
  const { store, blobs, write } = serviceWith('skip-barred', servers, 2);
  const chunk = hex(8, 64);
  store.createUpload({ id: hex(90), replicas: 2, createdAt: 0, expiresAt: 10 });
  store.commitBlob({
    id: hex(91),
    uploadId: hex(90),
    wanted: 2,
    createdAt: 1,
    chunks: [{ id: chunk, size: 10, servers: [corrupt] }],
  });
  store.markReplicaCorrupt(chunk, corrupt);
  store.db
    .prepare('INSERT INTO chunk_deletions (chunk_id, server_id, queued_at) VALUES (?, ?, 1)')
    .run(chunk, deleting);
  for (let i = 0; i < 20; i++) {
    const w = write(chunk, 10);
    assert.deepEqual([...w.servers].sort(), [free1, free2]);
    const res = blobs.commit(w.uploadId, { chunks: [{ id: chunk, size: 10, receipts: w.receipts }] }, 'bob');
    assert.equal(res.underReplicated, 0);
  }
  store.markReplicaCorrupt(chunk, free1);
  store.db
    .prepare('INSERT INTO chunk_deletions (chunk_id, server_id, queued_at) VALUES (?, ?, 1)')
    .run(chunk, free2);
  assert.throws(() => write(chunk, 10), {
    code: 'SEDFS_ERR_NO_SERVERS',
    message: /holds a corrupt copy of it or is deleting one/,
  });
  store.close();
});

test('a placement that leaves servers out (a chain that did not all store a chunk) places as many copies as asked, at most the upload wants, on none of them; none left is SEDFS_ERR_NO_SERVERS, not the cluster out of space', () => {
  const servers = [hex(1), hex(2), hex(3), hex(4), hex(5)];
  const { store, blobs } = serviceWith('exclude', servers, 3);
  const { uploadId } = blobs.begin(3, 'bob');
  const chunk = hex(9, 64);
  const exclude = servers.slice(0, 3);
  for (let i = 0; i < 20; i++) {
    const [one] = blobs.place(
      uploadId,
      { chunks: [{ id: chunk, size: 10, exclude, replicas: 1 }] },
      'bob',
    ).placements;
    assert.equal(one?.servers.length, 1);
    assert.ok(!exclude.includes(one?.servers[0]?.id as string));
  }
  const many = blobs.place(
    uploadId,
    { chunks: [{ id: chunk, size: 10, exclude: [hex(1)], replicas: 9 }] },
    'bob',
  );
  assert.equal(many.placements[0]?.servers.length, 3, 'no more than the upload wants');
  assert.ok(!many.placements[0]?.servers.some((s) => s.id === hex(1)));
  assert.equal(many.warning, undefined);
  // Left short by the servers the client left out (ones not answering it), not by room.
  const around = blobs.place(
    uploadId,
    { chunks: [{ id: chunk, size: 10, exclude: servers.slice(0, 3) }] },
    'bob',
  );
  assert.equal(around.placements[0]?.servers.length, 2);
  assert.equal(
    around.warning,
    'only 2 of the file servers up with room are not among the 3 this client left out (3 wanted): chunks will be under-replicated',
  );
  assert.throws(() => blobs.place(uploadId, { chunks: [{ id: chunk, size: 10, exclude: servers }] }, 'bob'), {
    code: 'SEDFS_ERR_NO_SERVERS',
    message: /outside the 5 asked to be left out/,
  });
  store.close();
});

test('asked for batch tickets, main signs one ticket a batch: a batched chunk names its batch, whose ticket is good for that chunk alone on each of its servers; a chunk in no batch, or a client that does not ask, gets a ticket of its own', () => {
  const servers = [hex(1), hex(2), hex(3)];
  const store = new SqliteStore(join(dir, 'batch-tickets.db'));
  const log = pino({ level: 'silent' });
  const signer = ticketSigner(generateTicketKeyPem());
  let signed = 0;
  const blobs = new BlobService(
    store,
    new Registry(store, log, () => clock0, 2000, 600_000, 'http'),
    {
      ...signer,
      sign: (p) => {
        signed++;
        return signer.sign(p);
      },
    },
    log,
    () => clock0,
    Math.random,
    { replicas: 3, ticketTtlMs: 60_000, uploadTtlMs: 60_000 },
  );
  for (const id of servers)
    store.registerServer(
      {
        id,
        url: 'http://x',
        ...stats,
        totalBytes: 2 ** 40,
        freeBytes: 2 ** 40,
        registeredAt: 1,
        lastHeartbeat: clock0,
      },
      'k',
    );
  const verify = ticketVerifier(signer.publicKeyPem);
  const { uploadId } = blobs.begin(3, 'bob');
  // 20 small chunks over 6 orders of 3 servers: some chain has several. One too big to batch.
  const chunks = [
    ...Array.from({ length: 20 }, (_, i) => ({ id: hex(100 + i, 64), size: 1000 })),
    { id: hex(999, 64), size: 1024 * 1024 },
  ];
  const answer = blobs.place(uploadId, { chunks, batchTickets: true }, 'bob');
  const batches = answer.batches ?? [];
  assert.ok(batches.length > 0);
  assert.equal(signed, batches.length + answer.placements.filter((p) => 'ticket' in p).length);
  for (const p of answer.placements) {
    const ticket = 'batch' in p ? (batches[p.batch] as { ticket: string }).ticket : p.ticket;
    if ('batch' in p) {
      assert.ok(batches[p.batch]?.chunks.includes(p.chunk));
      assert.deepEqual(batches[p.batch]?.servers, p.servers);
    }
    for (const s of p.servers) verify(ticket, { op: 'write', chunk: p.chunk, server: s.id, now: clock0 });
  }
  const big = answer.placements.find((p) => p.chunk === hex(999, 64));
  assert.ok(big && 'ticket' in big, 'a chunk too big to batch has its own');
  assert.ok(answer.placements.filter((p) => 'batch' in p).length >= 2);

  const plain = blobs.place(uploadId, { chunks }, 'bob');
  assert.ok(plain.placements.every((p) => 'ticket' in p && !('batch' in p)));
  store.close();
});
