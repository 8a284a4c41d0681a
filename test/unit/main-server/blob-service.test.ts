import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { generateTicketKeyPem, ticketSigner } from '../../../src/crypto/tickets.js';
import { BlobService } from '../../../src/main-server/blob-service.js';
import { Registry } from '../../../src/main-server/registry.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';

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
    new Registry(store, log, () => clock.now, 2000),
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
