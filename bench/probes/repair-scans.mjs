// How long main's repair pass holds its thread in the two queries it makes each pass over
// the chunk map (`underReplicated`, the repair queue, and `findSurplus`), at CHUNKS chunks
// × 3 replicas on 4 servers, seeded straight into a store in a temporary folder (as W7
// seeds its million). Each figure is the median of ROUNDS calls, in ms. Run from the
// repository root after `npm run build`:
//
//   node bench/probes/repair-scans.mjs [CHUNKS=1000000] [ROUNDS=3]
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../dist/src/main-server/store/sqlite-store.js';

const chunks = Number(process.argv[2] ?? 1_000_000);
const rounds = Number(process.argv[3] ?? 3);
const SURPLUS = Math.min(10_000, Math.floor(chunks / 10));
const SPREAD = Math.floor(chunks / SURPLUS);
const servers = [1, 2, 3, 4].map((n) => n.toString(16).padStart(32, '0'));
const chunkId = (i) => createHash('sha256').update(`chunk ${i}`).digest('hex');
const root = mkdtempSync(join(tmpdir(), 'sedfs-scans-probe-'));

/** Chunk i on servers i, i+1 and i+2 (mod 4): each server holds three quarters of them. */
function seed(store) {
  for (const id of servers)
    store.registerServer(
      {
        id,
        url: `http://${id.slice(-4)}`,
        totalBytes: 1e12,
        freeBytes: 1e11,
        usedBytes: 0,
        chunkCount: 0,
        registeredAt: 1,
        lastHeartbeat: 1,
      },
      'k',
    );
  const chunk = store.db.prepare(
    'INSERT INTO chunks (id, size, wanted, refs, created_at) VALUES (?, 4096, 3, 1, ?)',
  );
  const replica = store.db.prepare(
    "INSERT INTO replicas (chunk_id, server_id, state, added_at) VALUES (?, ?, 'ok', ?)",
  );
  const batch = 50_000;
  for (let start = 0; start < chunks; start += batch) {
    store.db.transaction(() => {
      for (let i = start; i < Math.min(chunks, start + batch); i++) {
        const id = chunkId(i);
        chunk.run(id, i);
        for (let k = 0; k < 3; k++) replica.run(id, servers[(i + k) % 4], i);
      }
    })();
  }
}

function median(f) {
  const times = [];
  let result;
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    result = f();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { ms: Math.round(times[Math.floor(times.length / 2)]), result };
}

const store = new SqliteStore(join(root, 'main.db'));
try {
  let t = performance.now();
  seed(store);
  const seedSeconds = ((performance.now() - t) / 1000).toFixed(1);
  const all = servers;
  const live = (ids) => ids.map((id) => ({ id, freeBytes: 1e11, returnedAt: 0 }));
  const figures = {};
  const queue = (counted, liveIds) => {
    const r = store.underReplicated(counted, liveIds, 512);
    return { page: r.chunks.length, withoutLiveCopy: r.withoutLiveCopy };
  };
  figures['underReplicated, nothing to find'] = median(() => queue(all, all));
  // The fourth server lost: the three quarters of the chunks it held are short.
  figures['underReplicated, a server lost'] = median(() => queue(all.slice(0, 3), all.slice(0, 3)));
  // ...and down but still counted: nothing short, but its copies cannot be sources.
  figures['underReplicated, a server down'] = median(() => queue(all, all.slice(0, 3)));
  figures['findSurplus, nothing to find'] = median(() => store.findSurplus(live(all), 1));
  // A fourth copy of SURPLUS chunks spread through the map, on the server that lacks them.
  store.db.transaction(() => {
    const replica = store.db.prepare(
      "INSERT INTO replicas (chunk_id, server_id, state, added_at) VALUES (?, ?, 'ok', 1)",
    );
    for (let i = 0; i < SURPLUS; i++) replica.run(chunkId(i * SPREAD), servers[(i * SPREAD + 3) % 4]);
  })();
  t = performance.now();
  const found = store.findSurplus(live(all), 2);
  figures[`findSurplus, ${SURPLUS} to find (first call)`] = {
    ms: Math.round(performance.now() - t),
    result: found,
  };
  figures[`findSurplus, ${SURPLUS} noted already`] = median(() => store.findSurplus(live(all), 3));
  console.log(JSON.stringify({ chunks, replicas: 3 * chunks + SURPLUS, seedSeconds, rounds }));
  for (const [what, f] of Object.entries(figures))
    console.log(`${what}: ${f.ms} ms ${JSON.stringify(f.result)}`);
} finally {
  store.close();
  rmSync(root, { recursive: true, force: true });
}
