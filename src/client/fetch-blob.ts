import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { growHeapFreelyDuringDownload, noteBulkBytes } from '../common/gc-tuning.js';
import { watchOutput } from '../common/output-watch.js';
import { sha256Hex } from '../crypto/hash.js';
import { SedfsError } from '../protocol/errors.js';
import type { BlobManifest, ManifestChunk } from '../protocol/main-api.js';
import { ChunkPool } from './chunker.js';
import type { ClusterClient } from './cluster-client.js';

export interface FetchOptions {
  /** chunks fetched at once (GET_AHEAD) */
  concurrency?: number;
  /**
   * Checks and decrypts a stored chunk in place, returning the plaintext in the stored
   * chunk's own memory; throws if it is not authentic. Without it, a chunk is checked
   * against its id (SHA-256) and written as stored.
   */
  open?: (stored: Buffer, chunk: ManifestChunk, last: boolean) => Buffer;
  /** Bytes written so far. */
  onProgress?: (bytesDone: number) => void;
  /** makes the buffers chunks are received into: `out`'s own (FileWriter.bufferFor) */
  buffers?: (size: number) => Buffer;
}

/**
 * Chunks a download fetches at once. Servers read each chunk from their disk as they
 * send it, so what is in flight is also the disk's queue of reads: 1 GiB gets, caches
 * dropped, thirteenth session's VM, interleaved: R=3 2 at once 429–452 MiB/s, 4 at once
 * 481–540, 8 at once 519–598, 12 and 16 no faster (562–581) with 17–33 MiB more memory;
 * R=1 4 at once 509–570, 8 at once 596–647. One 4 MiB buffer each. Where nothing waits
 * for a disk (chunks the servers still cache, hashed rather than written: the bench's
 * own W2), 8 cost ~5 % against 4 (521–544 against 551–572 MiB/s), 6 measured as 8.
 */
export const GET_AHEAD = 8;

/**
 * Where a download finds its chunks: a whole manifest, or a file's manifest page by page
 * from main (`ManifestPager`), which can also renew tickets that expired.
 */
export interface ChunkSource {
  /** chunks in all */
  readonly count: number;
  /** the largest chunk, stored: the size of the buffers chunks are received into */
  readonly maxChunkBytes: number;
  /** chunk `i`, with its replicas and a read ticket */
  chunk(i: number): ManifestChunk | Promise<ManifestChunk>;
  /** fresh tickets for chunk `i`, whose ticket `stale` was refused as expired */
  renew?(i: number, stale: ManifestChunk): Promise<void>;
}

/**
 * A manifest main answered whole (a bare blob, a small file in a batch), as a source;
 * one that reorders or repeats chunks fails before any byte is fetched.
 */
export function wholeManifest(manifest: BlobManifest): ChunkSource {
  for (const [i, c] of manifest.chunks.entries()) inPlace(c, i);
  return {
    count: manifest.chunks.length,
    maxChunkBytes: manifest.chunks.reduce((m, c) => Math.max(m, c.size), 0),
    chunk: (i) => manifest.chunks[i] as ManifestChunk,
  };
}

/**
 * Fetches a blob's chunks in parallel and writes them in order. Each chunk is checked
 * (by `open`'s authentication tag, else against its id); a replica that is unreachable
 * or returns wrong bytes is skipped for the next one, and a bad one is reported to main.
 * Wrong bytes are never written.
 */
export async function fetchBlob(
  client: ClusterClient,
  blobId: string,
  out: Writable,
  opts: FetchOptions = {},
): Promise<{ size: number; chunks: number }> {
  return fetchManifest(client, await client.manifest(blobId), out, opts);
}

/** `fetchChunks` of a whole manifest; its size is the blob's. */
export async function fetchManifest(
  client: ClusterClient,
  manifest: BlobManifest,
  out: Writable,
  opts: FetchOptions = {},
): Promise<{ size: number; chunks: number }> {
  const { chunks } = await fetchChunks(client, wholeManifest(manifest), out, opts);
  return { size: manifest.size, chunks };
}

/**
 * Chunks are received into, and opened in, buffers reused from one small pool: a buffer
 * goes back once `out` has taken its bytes, so memory stays flat and warm whatever the
 * file's size (fresh memory is slow to touch). Opening in place saves a second pool
 * (~8 MiB less at the peak of a 1 GiB get, same speed). A chunk whose every replica
 * refused its ticket as expired is fetched once more with tickets the source renews.
 */
export async function fetchChunks(
  client: ClusterClient,
  source: ChunkSource,
  out: Writable,
  opts: FetchOptions = {},
): Promise<{ bytes: number; chunks: number }> {
  const concurrency = opts.concurrency ?? GET_AHEAD;
  const pool = new ChunkPool(source.maxChunkBytes, opts.buffers);
  const pending = new Map<number, Promise<Buffer>>();
  let next = 0;
  let bytesDone = 0;
  const fetchAt = async (i: number): Promise<Buffer> => {
    const last = i === source.count - 1;
    const chunk = inPlace(await source.chunk(i), i);
    try {
      return await fetchChunk(client, chunk, last, opts.open, pool);
    } catch (err) {
      if (!source.renew || (err as SedfsError).code !== 'SEDFS_ERR_TICKET_EXPIRED') throw err;
      await source.renew(i, chunk);
      return fetchChunk(client, inPlace(await source.chunk(i), i), last, opts.open, pool);
    }
  };
  const endGrowth = growHeapFreelyDuringDownload();
  const start = () => {
    while (next < source.count && pending.size < concurrency) {
      const p = fetchAt(next);
      p.catch(() => undefined); // awaited in order below; this only silences the early rejection
      pending.set(next++, p);
    }
  };
  // The output failing (a full disk, a closed pipe) ends the download at once, whatever it
  // waits for.
  const outFailed = watchOutput(out, 'the output was closed before the download ended');
  try {
    for (let i = 0; i < source.count; i++) {
      start();
      const bytes = await Promise.race([pending.get(i) as Promise<Buffer>, outFailed.failed]);
      pending.delete(i);
      if (outFailed.error) throw outFailed.error;
      if (!out.write(bytes, () => pool.release(bytes)))
        await Promise.race([once(out, 'drain'), outFailed.failed]);
      bytesDone += bytes.length;
      noteBulkBytes(bytes.length);
      opts.onProgress?.(bytesDone);
    }
  } finally {
    outFailed.stop();
    endGrowth();
  }
  return { bytes: bytesDone, chunks: source.count };
}

/**
 * Each chunk is opened as the chunk at its place in the file (its index is bound into
 * its authentication), so a manifest that reorders or repeats chunks fails at the chunk
 * out of place rather than passing its own claimed index through.
 */
function inPlace(chunk: ManifestChunk | undefined, i: number): ManifestChunk {
  if (chunk?.index !== i)
    throw new SedfsError(
      'SEDFS_ERR_CORRUPT_CHUNK',
      `the manifest lists chunk ${chunk?.index ?? 'none'} at place ${i}: chunks out of order`,
      chunk ? { chunk: chunk.id } : undefined,
    );
  return chunk;
}

async function fetchChunk(
  client: ClusterClient,
  chunk: ManifestChunk,
  last: boolean,
  open: FetchOptions['open'],
  pool: ChunkPool,
): Promise<Buffer> {
  const errors: string[] = [];
  let expired = 0;
  /** replicas that sent bytes that did not check: reported once another copy shows it was theirs */
  const wrong: string[] = [];
  // Servers that lately did not answer are tried last (see Unanswering).
  for (const replica of client.unanswering.last(chunk.replicas, (r) => r.id)) {
    const into = pool.take();
    let handedOn = false;
    try {
      // A new connection there must show the certificate of the server main named.
      const url = `${client.chunkUrl(replica.url)}/v1/chunks/${chunk.id}`;
      const bytes = await client.chunks.get(url, chunk.ticket, chunk.size, into, [replica.id]);
      if (bytes.length === chunk.size) {
        // After a copy that did not open, the next is hashed first (opening overwrites
        // it): a copy that is the chunk yet does not open says the fault is not the
        // servers' but the manifest's or the key's.
        const intact = open && wrong.length > 0 ? sha256Hex(bytes) === chunk.id : undefined;
        const checked = open
          ? openOrUndefined(open, bytes, chunk, last)
          : sha256Hex(bytes) === chunk.id && bytes;
        if (checked) {
          // The writer gives the returned buffer back to the pool: `into`, unless `open`
          // answered in memory of its own.
          handedOn = checked.buffer === into.buffer;
          await reportAll(client, chunk.id, wrong);
          return checked;
        }
        if (intact)
          throw new SedfsError(
            'SEDFS_ERR_CORRUPT_CHUNK',
            `chunk ${chunk.index} is stored whole on its servers but does not open as this file's: the manifest or the key is not this version's`,
            { chunk: chunk.id },
          );
      }
      errors.push(`${replica.id.slice(0, 8)}: wrong bytes`);
      wrong.push(replica.id);
    } catch (err) {
      if ((err as SedfsError).code === 'SEDFS_ERR_CORRUPT_CHUNK') throw err;
      if ((err as SedfsError).code === 'SEDFS_ERR_TICKET_EXPIRED') expired++;
      if ((err as SedfsError).code === 'SEDFS_ERR_UNREACHABLE')
        client.unanswering.note(replica.id, (err as Error).message);
      errors.push(`${replica.id.slice(0, 8)}: ${(err as Error).message}`);
    } finally {
      // Failed: the buffer is free for the next replica or chunk (else the writer frees it).
      if (!handedOn) pool.release(into);
    }
  }
  // No copy checked and none proved the fault elsewhere: each that sent bytes is reported.
  await reportAll(client, chunk.id, wrong);
  const why = chunk.replicas.length === 0 ? 'no live server holds it' : errors.join('; ');
  // Every replica refused the ticket as expired (a download longer than a ticket's life):
  // the caller may renew it; any other failure is the chunk's.
  const code =
    expired === chunk.replicas.length && expired > 0
      ? 'SEDFS_ERR_TICKET_EXPIRED'
      : 'SEDFS_ERR_ALL_REPLICAS_FAILED';
  throw new SedfsError(code, `chunk ${chunk.index} could not be read (${why})`, {
    chunk: chunk.id,
  });
}

/** Tells main of copies that sent wrong bytes (it has their servers re-check them). */
async function reportAll(client: ClusterClient, chunkId: string, servers: string[]): Promise<void> {
  for (const server of servers) await client.reportBadReplica(chunkId, server).catch(() => undefined);
}

/** The opened chunk, or undefined if it is not authentic (the next replica is tried). */
function openOrUndefined(
  open: NonNullable<FetchOptions['open']>,
  stored: Buffer,
  chunk: ManifestChunk,
  last: boolean,
): Buffer | undefined {
  try {
    return open(stored, chunk, last);
  } catch {
    return undefined;
  }
}
