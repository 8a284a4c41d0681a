import { createAgent } from '../../src/common/http-client.js';
import type { Logger } from '../../src/common/logger.js';
import { generateTicketKeyPem, ticketSigner } from '../../src/crypto/tickets.js';
import type { Registry } from '../../src/main-server/registry.js';
import { Repairer, type RepairOptions } from '../../src/main-server/repairer.js';
import { ReplicaProver } from '../../src/main-server/replica-prover.js';
import type { SqliteStore } from '../../src/main-server/store/sqlite-store.js';
import type { MainStore } from '../../src/main-server/store/store.js';

const hex = (n: number, len = 32) => n.toString(16).padStart(len, '0');

/** Disk figures for test servers: roomy, and all alike unless a test says otherwise. */
export const TEST_STATS = { totalBytes: 1 << 30, freeBytes: 1 << 29, usedBytes: 0, chunkCount: 0 };

/**
 * Registers file servers in main's store, each last heard from at `heartbeat`, with
 * receipt key 'k' unless given. A server named by its id alone is at an address where
 * nothing answers: for tests of the map itself, which never call one.
 */
export function registerServers(
  store: MainStore,
  servers: (string | { id: string; url: string; lastHeartbeat?: number })[],
  heartbeat: number,
  stats: typeof TEST_STATS = TEST_STATS,
  receiptKey = 'k',
): void {
  for (const server of servers) {
    const s = typeof server === 'string' ? { id: server, url: 'http://127.0.0.1:9' } : server;
    store.registerServer(
      { id: s.id, url: s.url, ...stats, registeredAt: 1, lastHeartbeat: s.lastHeartbeat ?? heartbeat },
      receiptKey,
    );
  }
}

/**
 * Puts chunks in main's map as one committed blob, each wanted `wanted` times, with the
 * replicas named (an upload and a blob of their own: `n` tells blobs apart in one store).
 */
export function commitChunks(
  store: MainStore,
  wanted: number,
  chunks: { id: string; size: number; servers: string[] }[],
  n = 0,
): void {
  store.createUpload({ id: hex(900 + n), replicas: wanted, createdAt: 0, expiresAt: 10 });
  store.commitBlob({ id: hex(500 + n), uploadId: hex(900 + n), wanted, createdAt: 1 + n, chunks });
}

/**
 * A repairer copying one chunk at a time, unpaced, two chunks a page, on the test's clock;
 * a pass looks at `span` chunks of the map (all of a test's, unless it says otherwise).
 */
export function repairerFor(
  store: SqliteStore,
  registry: Registry,
  log: Logger,
  clock: { now: number },
  random: () => number = Math.random,
  span = 1000,
  more: Partial<RepairOptions> = {},
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
    { concurrency: 1, rateMiBs: 0, batch: 2, span, ...more },
    new ReplicaProver(signer, agent, () => clock.now),
    random,
  );
}
