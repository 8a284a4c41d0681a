// A get split over threads, to compare with `sedfs get` (docs/performance-history.md, "Fourth
// session of 2026-11-26"): THREADS threads (the calling one and THREADS-1 workers) each
// keep PER_THREAD chunks in flight, taking chunk numbers from one shared counter, and
// write each opened chunk at its own offset (O_DIRECT from aligned buffers): no bytes
// cross threads, no chunk waits for the one before it. No replica fallback, no progress:
// a measuring tool, not a download. Linux; run from the repository root after
// `npm run build`, with the profile of a signed-in user:
//
//   SEDFS_HOME=PROFILE node bench/probes/parallel-get.mjs /big.bin /tmp/out.bin 2 3
import { closeSync, ftruncateSync, openSync, renameSync, write } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { ChunkReader } from '../../dist/src/common/chunk-reader.js';
import { DirectIo } from '../../dist/src/common/direct-io.js';
import { TlsIdentity } from '../../dist/src/common/tls.js';
import { openChunk } from '../../dist/src/crypto/content.js';

const writeAt = promisify(write);

async function share({ ca, chunks, key, versionId, fd, counter, chunkBytes, dir, per }) {
  const reader = new ChunkReader(ca ? new TlsIdentity(ca) : undefined);
  const io = DirectIo.open(dir);
  const n = chunks.length;
  const loop = async () => {
    const buf = io.alignedBuffer(chunkBytes + 4096);
    for (;;) {
      const i = Atomics.add(counter, 0, 1);
      if (i >= n) return;
      const c = chunks[i];
      const r = c.replicas[0];
      const got = await reader.get(`${r.url}/v1/chunks/${c.id}`, c.ticket, c.size, buf);
      const plain = openChunk(key, versionId, c.index, i === n - 1, got, got);
      const len = Math.ceil(plain.length / 4096) * 4096;
      await writeAt(fd, buf, 0, len, i * chunkBytes);
    }
  };
  await Promise.all(Array.from({ length: per }, loop));
  reader.close();
  io.close();
}

if (isMainThread) {
  const t0 = performance.now();
  const threads = Number(process.argv[4] ?? 2),
    per = Number(process.argv[5] ?? 2);
  const workers = [];
  const counter = new Int32Array(new SharedArrayBuffer(4));
  const started = [];
  for (let w = 1; w < threads; w++) {
    const worker = new Worker(new URL(import.meta.url));
    workers.push(worker);
    started.push(
      new Promise((res, rej) => {
        worker.once('message', res);
        worker.once('error', rej);
      }),
    );
  }
  const { CliEnv } = await import('../../dist/src/cli/env.js');
  const { unwrapContentKey } = await import('../../dist/src/crypto/node-keys.js');
  const env = new CliEnv();
  const cmd = { optsWithGlobals: () => ({}) };
  const fs = await env.fileSystem(cmd);
  const { client } = await env.session(cmd);
  const file = await fs.resolve(process.argv[2], '/');
  const content = await client.call('GET', `/v1/nodes/${file.entry.id}/content`);
  const v = content.version;
  const key = unwrapContentKey(file.key, v.id, v.contentKey);
  const local = process.argv[3];
  const tmp = `${local}.part`;
  const fd = openSync(tmp, DirectIo.newFileFlags, 0o600);
  const trust = await env.profile(cmd).trustFor(client.mainUrl);
  const job = {
    ca: trust?.ca,
    chunks: content.manifest.chunks,
    key,
    versionId: v.id,
    fd,
    counter,
    chunkBytes: v.chunkBytes,
    dir: dirname(local),
    per,
  };
  const t1 = performance.now();
  for (const w of workers) w.postMessage(job);
  await Promise.all([share(job), ...started]);
  ftruncateSync(fd, v.size);
  closeSync(fd);
  renameSync(tmp, local);
  await env.close();
  for (const w of workers) await w.terminate();
  console.error(`ready at ${(t1 - t0).toFixed(0)} ms, done ${(performance.now() - t0).toFixed(0)} ms`);
} else {
  parentPort.once('message', async (job) => {
    await share(job);
    parentPort.postMessage('done');
  });
}
