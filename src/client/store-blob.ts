import { request } from 'undici';
import { errorFromResponse, unreachable } from '../common/http-client.js';
import { sha256Hex } from '../crypto/hash.js';
import { SedfsError } from '../protocol/errors.js';
import type { PutChunkResponse, ReplicaFailure, StoredReceipt } from '../protocol/file-server-api.js';
import type { CommitRequest, CommitResponse, Placement } from '../protocol/main-api.js';
import { TICKET_HEADER } from '../protocol/ticket.js';
import { ChunkPool, chunked } from './chunker.js';
import type { ClusterClient } from './cluster-client.js';

export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;

export interface StoreOptions {
  replicas?: number;
  chunkBytes?: number;
  /** chunks in flight at once */
  concurrency?: number;
  onProgress?: (bytesDone: number) => void;
  /** Told when main places chunks on fewer servers than wanted. */
  onWarning?: (message: string) => void;
}

/**
 * Stores a byte stream as replicated chunks and commits it as one blob. Memory is
 * bounded by `concurrency` chunk buffers, whatever the stream's length.
 */
export async function storeBlob(
  client: ClusterClient,
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: StoreOptions = {},
): Promise<CommitResponse> {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const concurrency = opts.concurrency ?? 4;
  const pool = new ChunkPool(chunkBytes);
  const upload = await client.beginUpload(opts.replicas);
  const done: CommitRequest['chunks'] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let bytesDone = 0;
  let warned = false;

  let index = 0;
  for await (const chunk of chunked(source, chunkBytes, pool)) {
    if (failure) break;
    const i = index++;
    const task = (async () => {
      try {
        const id = sha256Hex(chunk);
        const size = chunk.length;
        const { placements, warning } = await client.place(upload.uploadId, [{ id, size }]);
        if (warning && !warned) {
          warned = true;
          opts.onWarning?.(warning);
        }
        const receipts = await sendChunk(client, placements[0] as Placement, chunk);
        done[i] = { id, size, receipts };
        bytesDone += size;
        opts.onProgress?.(bytesDone);
      } catch (err) {
        failure ??= err;
      } finally {
        pool.release(chunk);
      }
    })();
    inFlight.add(task);
    void task.then(() => inFlight.delete(task));
    if (inFlight.size >= concurrency) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure) throw failure;
  return client.commit(upload.uploadId, done);
}

/**
 * Sends one chunk down its placement chain. When the chain breaks, the servers it
 * never reached are tried directly, each as the head of what is left of the chain.
 */
export async function sendChunk(
  client: ClusterClient,
  placement: Placement,
  bytes: Buffer,
): Promise<StoredReceipt[]> {
  const receipts: StoredReceipt[] = [];
  const failures: ReplicaFailure[] = [];
  let head = 0;
  while (head < placement.servers.length) {
    const server = placement.servers[head] as { id: string; url: string };
    const url = `${server.url}/v1/chunks/${placement.chunk}`;
    try {
      const res = await putChunk(client, url, placement.ticket, bytes);
      receipts.push(...res.receipts);
      const skipped = res.failed.filter((f) => !f.attempted);
      failures.push(...res.failed.filter((f) => f.attempted));
      if (skipped.length === 0) break;
      head = placement.servers.findIndex((s) => s.id === skipped[0]?.server);
      if (head < 0) break;
    } catch (err) {
      const e = err instanceof SedfsError ? err : new SedfsError('SEDFS_ERR_INTERNAL', String(err));
      failures.push({ server: server.id, code: e.code, message: e.message, attempted: true });
      head += 1;
    }
  }
  if (receipts.length === 0) {
    const why = failures.map((f) => `${f.server.slice(0, 8)}: ${f.message}`).join('; ');
    throw new SedfsError(
      'SEDFS_ERR_REPLICATION_FAILED',
      `chunk ${placement.chunk.slice(0, 12)} was stored nowhere (${why})`,
      {
        chunk: placement.chunk,
      },
    );
  }
  return receipts;
}

async function putChunk(
  client: ClusterClient,
  url: string,
  ticket: string,
  bytes: Buffer,
): Promise<PutChunkResponse> {
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, {
      dispatcher: client.agent,
      method: 'PUT',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(bytes.length),
        [TICKET_HEADER]: ticket,
      },
      body: bytes,
    });
  } catch (err) {
    throw unreachable(url, err);
  }
  if (res.statusCode >= 400) throw await errorFromResponse(res, url);
  return (await res.body.json()) as PutChunkResponse;
}
