// How long main's repair pass holds its thread in the two queries it makes over the chunk
// map (`underReplicated`, the repair queue, and `findSurplus`), at CHUNKS chunks × 3
// replicas on 4 servers, seeded straight into a store in a temporary folder (as W7 seeds
// its million). A pass looks at a stretch of SPAN chunks (main's is 10,000): each figure
// is the median of ROUNDS calls at different places in the map, in ms, then what a whole
// sweep of the map costs in all and in its longest call, and the whole map in one call
// (as every pass did before, and as `sedfs check` counted the queue before it counted a
// stretch at a time, which is measured last). Run from the
// repository root after `npm run build`:
//
//   node bench/probes/repair-scans.mjs [CHUNKS=1000000] [ROUNDS=3] [SPAN=10000]
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../dist/src/main-server/store/sqlite-store.js';

const chunks = Number(process.argv[2] ?? 1_000_000);
const rounds = Number(process.argv[3] ?? 3);
const span = Number(process.argv[4] ?? 10_000);
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

/** Where the r-th round's stretch begins: spread over the id space. */
const place = (r) => (r === 0 ? '' : Math.floor((16 * r) / rounds).toString(16));

function median(f) {
  const times = [];
  let result;
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    result = f(place(r));
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { ms: Math.round(times[Math.floor(times.length / 2)]), result };
}

/** A whole sweep, stretch by stretch as the repairer goes: its total and its longest call, in ms. */
function sweep(counted, liveIds) {
  let after = '';
  let total = 0;
  let longest = 0;
  let calls = 0;
  let short = 0;
  for (;;) {
    let t = performance.now();
    const r = store.underReplicated(counted, liveIds, 512, { after, span });
    if (r.upTo !== '') store.findSurplus(live(liveIds), 4, { after, upTo: r.upTo });
    t = performance.now() - t;
    total += t;
    longest = Math.max(longest, t);
    calls++;
    short += r.chunks.length;
    if (r.end) break;
    after = r.upTo;
  }
  return { ms: Math.round(total), result: { calls, longestMs: Math.round(longest), pageRows: short } };
}

/** `sedfs check`'s count of the repair queue, a stretch at a time as `Repairer.countQueue` goes. */
function checkCount(counted, liveIds) {
  let after = '';
  let total = 0;
  let longest = 0;
  let calls = 0;
  let short = 0;
  const times = [];
  for (;;) {
    let t = performance.now();
    const r = store.repairCounts(counted, liveIds, { after, span });
    t = performance.now() - t;
    times.push(t);
    total += t;
    longest = Math.max(longest, t);
    calls++;
    short += r.underReplicated;
    if (r.end) break;
    after = r.upTo;
  }
  times.sort((a, b) => a - b);
  const medianMs = Math.round(times[Math.floor(times.length / 2)]);
  return {
    ms: Math.round(total),
    result: { calls, medianMs, longestMs: Math.round(longest), underReplicated: short },
  };
}

const live = (ids) => ids.map((id) => ({ id, freeBytes: 1e11, returnedAt: 0 }));
const store = new SqliteStore(join(root, 'main.db'));
try {
  const t = performance.now();
  seed(store);
  const seedSeconds = ((performance.now() - t) / 1000).toFixed(1);
  const all = servers;
  const figures = {};
  const queue = (counted, liveIds, after) => {
    const r = store.underReplicated(counted, liveIds, 512, { after, span });
    return { page: r.chunks.length, withoutLiveCopy: r.withoutLiveCopy };
  };
  // Where each round's stretch ends, found beforehand: the repairer has it from its queue query.
  const ends = new Map(
    Array.from({ length: rounds }, (_, r) => [
      place(r),
      store.underReplicated(all, all, 0, { after: place(r), span }).upTo,
    ]),
  );
  const upTo = (after) => ends.get(after);
  figures['underReplicated, nothing to find'] = median((after) => queue(all, all, after));
  // The fourth server lost: the three quarters of the chunks it held are short.
  figures['underReplicated, a server lost'] = median((after) =>
    queue(all.slice(0, 3), all.slice(0, 3), after),
  );
  // ...and down but still counted: nothing short, but its copies cannot be sources.
  figures['underReplicated, a server down'] = median((after) => queue(all, all.slice(0, 3), after));
  figures['findSurplus, nothing to find'] = median((after) =>
    store.findSurplus(live(all), 1, { after, upTo: upTo(after) }),
  );
  figures['a sweep, nothing to find (calls, longest)'] = sweep(all, all);
  figures['a sweep, a server lost (calls, longest)'] = sweep(all.slice(0, 3), all.slice(0, 3));
  // A fourth copy of SURPLUS chunks spread through the map, on the server that lacks them.
  store.db.transaction(() => {
    const replica = store.db.prepare(
      "INSERT INTO replicas (chunk_id, server_id, state, added_at) VALUES (?, ?, 'ok', 1)",
    );
    for (let i = 0; i < SURPLUS; i++) replica.run(chunkId(i * SPREAD), servers[(i * SPREAD + 3) % 4]);
  })();
  figures[`findSurplus, ${SURPLUS} in the map (first calls)`] = median((after) =>
    store.findSurplus(live(all), 2, { after, upTo: upTo(after) }),
  );
  figures[`findSurplus, ${SURPLUS} in the map noted already`] = median((after) =>
    store.findSurplus(live(all), 3, { after, upTo: upTo(after) }),
  );
  figures['the whole map in one call: underReplicated'] = median(() => {
    const r = store.underReplicated(all, all, 512);
    return { page: r.chunks.length, withoutLiveCopy: r.withoutLiveCopy };
  });
  figures['the whole map in one call: findSurplus'] = median(() => store.findSurplus(live(all), 5));
  figures["the whole map in one call: repairCounts (sedfs check's before it counted in stretches)"] = median(
    () => store.repairCounts(all, all),
  );
  figures["sedfs check's count, stretch by stretch (calls, median, longest)"] = checkCount(all, all);
  figures["sedfs check's count, a server lost (calls, median, longest)"] = checkCount(
    all.slice(0, 3),
    all.slice(0, 3),
  );
  figures["sedfs check's count of the surplus copies noted (one call)"] = median(() => store.countSurplus());
  console.log(JSON.stringify({ chunks, replicas: 3 * chunks + SURPLUS, seedSeconds, rounds, span }));
  for (const [what, f] of Object.entries(figures))
    console.log(`${what}: ${f.ms} ms ${JSON.stringify(f.result)}`);
} finally {
  store.close();
  rmSync(root, { recursive: true, force: true });
}
