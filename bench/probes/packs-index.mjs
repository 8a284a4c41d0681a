// Memory and time of a file server's index of packed chunks (src/file-server/chunk-packs.ts)
// at a million small chunks, without storing a million files through the cluster: it
// writes PACKS packs of PER_PACK one-byte chunks (random ids; loading reads only the
// packs' indexes, not the bytes) into a temporary folder, then opens the store as a file
// server starts (ChunkStore.init), and lists it as an inventory does. Run from the
// repository root after `npm run build`:
//
//   node --expose-gc bench/probes/packs-index.mjs [PACKS=2000] [PER_PACK=500]
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkStore } from '../../dist/src/file-server/chunk-store.js';

const packs = Number(process.argv[2] ?? 2000);
const perPack = Number(process.argv[3] ?? 500);
const root = mkdtempSync(join(tmpdir(), 'sedfs-packs-probe-'));
const MiB = 1024 * 1024;

try {
  mkdirSync(join(root, 'packs'));
  mkdirSync(join(root, 'tmp'));
  for (let p = 0; p < packs; p++) {
    const header = Buffer.alloc(12 + 36 * perPack);
    header.write('SEDFSPK1', 0, 'latin1');
    header.writeUInt32BE(perPack, 8);
    for (let i = 0; i < perPack; i++) {
      randomBytes(32).copy(header, 12 + 36 * i);
      header.writeUInt32BE(1, 12 + 36 * i + 32);
    }
    const name = p.toString(16).padStart(16, '0');
    writeFileSync(join(root, 'packs', `${name}.pack`), Buffer.concat([header, Buffer.alloc(perPack)]));
  }
  const settle = () => {
    globalThis.gc?.();
    const m = process.memoryUsage();
    return { rss: m.rss / MiB, heap: m.heapUsed / MiB, external: m.arrayBuffers / MiB };
  };
  const before = settle();
  const store = new ChunkStore(root, 16 * 1024 * 1024, {
    onBadPack: (file, why) => console.error(`bad pack ${file}: ${why}`),
  });
  let t = performance.now();
  await store.init();
  const loaded = { chunks: (await store.stats()).chunkCount };
  const loadSeconds = (performance.now() - t) / 1000;
  const after = settle();
  t = performance.now();
  let listed = 0;
  let previous = '';
  for await (const id of store.inventory()) {
    if (id <= previous) throw new Error('ids out of order');
    previous = id;
    listed++;
  }
  const listSeconds = (performance.now() - t) / 1000;
  const perChunk = ((after.rss - before.rss) * MiB) / loaded.chunks;
  console.log(
    JSON.stringify({
      chunks: loaded.chunks,
      listed,
      loadSeconds: +loadSeconds.toFixed(2),
      listSeconds: +listSeconds.toFixed(2),
      rssMiB: +(after.rss - before.rss).toFixed(1),
      heapMiB: +(after.heap - before.heap).toFixed(1),
      arrayBuffersMiB: +(after.external - before.external).toFixed(1),
      rssBytesPerChunk: Math.round(perChunk),
      peakRssMiB: +(process.resourceUsage().maxRSS / 1024).toFixed(0),
    }),
  );
} finally {
  rmSync(root, { recursive: true, force: true });
}
