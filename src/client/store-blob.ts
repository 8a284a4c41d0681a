import { Slots } from '../common/parallel.js';
import { TAG_BYTES } from '../crypto/aead.js';
import { sha256Hex } from '../crypto/hash.js';
import { SedfsError } from '../protocol/errors.js';
import {
  type PutBatchResponse,
  type PutChunkResponse,
  type ReplicaFailure,
  SIZES_HEADER,
  type StoredReceipt,
} from '../protocol/file-server-api.js';
import type { CommitRequest, CommitResponse, Placement, PlacementBatch } from '../protocol/main-api.js';
import { TICKET_HEADER } from '../protocol/ticket.js';
import { type ByteSource, ChunkPool, chunked, sharedChunkPool } from './chunker.js';
import type { ClusterClient } from './cluster-client.js';
import { Placer } from './placer.js';

export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;

export interface StoreOptions {
  replicas?: number;
  chunkBytes?: number;
  /** chunks being sent at once (as many again, up to SEALED_AHEAD, are read and sealed meanwhile) */
  concurrency?: number;
  /**
   * Turns a plaintext chunk into what is stored (encryption) with its chunk id, written
   * into `into`: the plaintext's own buffer, 16 bytes longer, in shared memory (see
   * seal-workers.ts), so a chunk is sealed in place. Stored as is without it.
   */
  seal?: (
    plain: Buffer,
    index: number,
    last: boolean,
    into: Buffer,
  ) => Promise<{ bytes: Buffer; id: string }>;
  /** Plaintext bytes stored so far. */
  onProgress?: (bytesDone: number) => void;
  /** Told when main places chunks on fewer servers than wanted. */
  onWarning?: (message: string) => void;
}

export interface StoredChunks {
  uploadId: string;
  chunks: CommitRequest['chunks'];
  /** plaintext bytes read from the source */
  size: number;
  /** copies wanted of each chunk */
  replicas: number;
}

/**
 * Chunks read and sealed beyond those being sent. Chunks sent together share the link
 * and finish together, and with no sealed chunk waiting, the next ones were then read and
 * sealed one by one (~10 ms each on the one seal worker) while the server idled: a
 * timeline of a 1 GiB put showed groups of four placed, finished and refilled in step.
 */
const SEALED_AHEAD = 2;

/**
 * Stores a byte stream as replicated chunks, without committing: the caller commits
 * them as a bare blob or as a file version. Memory is bounded by `concurrency` +
 * SEALED_AHEAD chunk buffers (and the two `chunked` fills), whatever the stream's length.
 */
export async function storeChunks(
  client: ClusterClient,
  source: ByteSource,
  opts: StoreOptions = {},
): Promise<StoredChunks> {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const concurrency = opts.concurrency ?? 4;
  const sending = new Slots(concurrency);
  // Sealing runs on a worker thread, in place, on buffers in shared memory with room
  // for the AES-GCM tag: one buffer per chunk in flight, plaintext then stored bytes.
  const pool = opts.seal ? sharedChunkPool(chunkBytes + TAG_BYTES) : new ChunkPool(chunkBytes);
  const upload = await client.beginUpload(opts.replicas);
  const placer = new Placer(client, upload.uploadId, opts.onWarning);
  const others = new OtherServers();
  const done: CommitRequest['chunks'] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let bytesDone = 0;

  try {
    for await (const chunk of chunked(source, chunkBytes, pool)) {
      if (failure) {
        pool.release(chunk.bytes);
        break;
      }
      const task = (async () => {
        try {
          // Sealed in place: into the chunk's whole pooled buffer, which has room for the tag.
          const { bytes: stored, id } = opts.seal
            ? await opts.seal(
                chunk.bytes,
                chunk.index,
                chunk.last,
                Buffer.from(chunk.bytes.buffer, chunk.bytes.byteOffset, pool.size),
              )
            : { bytes: chunk.bytes, id: sha256Hex(chunk.bytes) };
          const plainSize = chunk.bytes.length;
          const size = stored.length;
          placer.add(chunk.index, { id, size });
          await sending.acquire();
          let receipts: StoredReceipt[];
          try {
            if (failure) return;
            receipts = await sendChunk(client, await placer.placementOf(chunk.index), stored, {
              uploadId: upload.uploadId,
              others,
            });
          } finally {
            sending.release();
          }
          done[chunk.index] = { id, size, receipts };
          bytesDone += plainSize;
          opts.onProgress?.(bytesDone);
        } catch (err) {
          failure ??= err;
        } finally {
          // Sent (the chain answered) or given up: the buffer is free again.
          pool.release(chunk.bytes);
        }
      })();
      inFlight.add(task);
      void task.then(() => inFlight.delete(task));
      if (inFlight.size >= concurrency + SEALED_AHEAD) await Promise.race(inFlight);
    }
  } catch (err) {
    // The source failed: no chunk read ahead goes out after this has been reported.
    failure ??= err;
  }
  await Promise.all(inFlight);
  if (failure) throw failure;
  return { uploadId: upload.uploadId, chunks: done, size: bytesDone, replicas: upload.replicas };
}

/** Stores a byte stream and commits it as one bare blob (no namespace entry). */
export async function storeBlob(
  client: ClusterClient,
  source: ByteSource,
  opts: StoreOptions = {},
): Promise<CommitResponse> {
  const stored = await storeChunks(client, source, opts);
  return client.commit(stored.uploadId, stored.chunks);
}

/**
 * What a server the client sent to itself answers when the request, not the server, is
 * wrong: the bytes are not the chunk they are sent as, or the request is malformed.
 * Another server would refuse it the same way, so none is asked for in its place. The
 * same answers from further down a chain say the bytes or the request were damaged on
 * the way there (each server checks a chunk before it sends its last byte on), and
 * another server may well take them.
 */
const REQUEST_AT_FAULT = new Set([
  'SEDFS_ERR_HASH_MISMATCH',
  'SEDFS_ERR_BAD_CHUNK_ID',
  'SEDFS_ERR_BAD_REQUEST',
  'SEDFS_ERR_BODY_REQUIRED',
  'SEDFS_ERR_UNSUPPORTED_MEDIA',
]);

/**
 * Sends one chunk down its placement chain. When the chain breaks, the servers it
 * never reached are tried directly, each as the head of what is left of the chain.
 * Servers of the chain that did not store it (they filled up since they last told main,
 * are down or cannot be reached from here, answered with an error, were never reached)
 * are made up for, once: main is asked for as many others, none of the chain, and they
 * are sent the chunk the same way. A put over a server that went down was otherwise
 * committed with a copy short on every chunk placed there, until main saw it lost and
 * repair made up for it. Without another, the chunk has fewer copies (or, with none at
 * all, the put fails) and repair restores the count later.
 */
export async function sendChunk(
  client: ClusterClient,
  placement: Placement,
  bytes: Buffer,
  opts: {
    /** the upload, whose placements make up for servers that did not store the chunk */
    uploadId?: string;
    /** the head's answer when the chunk already went down the chain in a batch */
    sent?: PutChunkResponse;
    /** the upload's asks for other servers, shared by its chunks */
    others?: OtherServers;
  } = {},
): Promise<StoredReceipt[]> {
  const { receipts, failures, requestAtFault } = await sendDownChain(client, placement, bytes, opts.sent);
  const stored = new Set(receipts.map((r) => r.server));
  const short = placement.servers.filter((s) => !stored.has(s.id)).length;
  const uploadId = opts.uploadId;
  // A server refused the request itself: others would too.
  if (short > 0 && uploadId !== undefined && !requestAtFault) {
    // None of the chain, nor (placeAround) a server found not answering.
    const exclude = placement.servers.map((s) => s.id);
    const ask = () =>
      client
        .placeAround(uploadId, [{ id: placement.chunk, size: bytes.length, exclude, replicas: short }])
        .then((res) => res.placements[0]);
    // None other up with room (or main unreachable): the copies made are what there is.
    const others = await (opts.others ?? new OtherServers()).place(exclude, bytes.length, ask);
    if (others?.chunk === placement.chunk) {
      const more = await sendDownChain(client, others, bytes);
      receipts.push(...more.receipts);
      failures.push(...more.failures);
    }
  }
  if (receipts.length === 0) {
    const why = failures.map((f) => `${f.server.slice(0, 8)}: ${f.message}`).join('; ');
    // Every server it went to was full: the cluster is, as far as this chunk goes.
    if (failures.length > 0 && failures.every((f) => f.code === 'SEDFS_ERR_NO_SPACE'))
      throw new SedfsError(
        'SEDFS_ERR_NO_SPACE',
        `the cluster is out of space: every file server chunk ${placement.chunk.slice(0, 12)} was placed on is full (${why})`,
        { chunk: placement.chunk },
      );
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

/**
 * An upload's asks to main for servers to take the place of those that did not store a
 * chunk. A put over a dead server, before main has seen it lost, makes one ask per chunk
 * placed there, and in a cluster of as many servers as replicas main has none to offer
 * (SEDFS_ERR_NO_SERVERS): so the first ask leaving out a set of servers is answered
 * before any other leaving out the same set is made, and a refusal holds for chunks as
 * big or bigger for a while (a server may come up meanwhile). Asks after one that was
 * answered go out at once.
 */
export class OtherServers {
  private refused: { outside: string[]; size: number; at: number }[] = [];
  /** by set left out: the first ask's answer (resolved either way), until a refusal */
  private readonly firstAsk = new Map<string, Promise<void>>();

  constructor(
    private readonly forgetAfterMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** `ask`'s answer, or undefined when main has none to offer (or cannot be asked). */
  async place<T>(exclude: string[], size: number, ask: () => Promise<T>): Promise<T | undefined> {
    const key = [...exclude].sort().join(',');
    const first = this.firstAsk.get(key);
    if (first) await first;
    if (!this.worthAsking(exclude, size)) return undefined;
    let answered = () => {};
    if (!this.firstAsk.has(key))
      this.firstAsk.set(
        key,
        new Promise<void>((resolve) => {
          answered = resolve;
        }),
      );
    try {
      return await ask();
    } catch (err) {
      if ((err as SedfsError).code === 'SEDFS_ERR_NO_SERVERS') {
        this.refused.push({ outside: [...exclude], size, at: this.now() });
        // Once the refusal is forgotten, the next ask is a first one again.
        this.firstAsk.delete(key);
      }
      return undefined;
    } finally {
      answered();
    }
  }

  /** false when main lately had no server outside a subset of `exclude` for a chunk of `size` or less */
  private worthAsking(exclude: string[], size: number): boolean {
    const since = this.now() - this.forgetAfterMs;
    this.refused = this.refused.filter((r) => r.at >= since);
    return !this.refused.some((r) => r.size <= size && r.outside.every((id) => exclude.includes(id)));
  }
}

/** Sends one chunk down a chain, and directly to the servers a broken chain never reached. */
async function sendDownChain(
  client: ClusterClient,
  placement: Placement,
  bytes: Buffer,
  sent?: PutChunkResponse,
): Promise<{ receipts: StoredReceipt[]; failures: ReplicaFailure[]; requestAtFault: boolean }> {
  const receipts: StoredReceipt[] = [];
  const failures: ReplicaFailure[] = [];
  /** a server sent to directly refused the request itself (REQUEST_AT_FAULT) */
  let requestAtFault = false;
  let head = 0;
  let answer = sent;
  while (head < placement.servers.length) {
    const server = placement.servers[head] as { id: string; url: string };
    const url = `${server.url}/v1/chunks/${placement.chunk}`;
    // A server found not answering lately (placed before it was) is passed over while one
    // after it may answer: it would cost this chunk its own wait. What it misses is made up for.
    const later = placement.servers.slice(head + 1);
    if (!answer && client.unanswering.has(server.id) && later.some((s) => !client.unanswering.has(s.id))) {
      failures.push({
        server: server.id,
        code: 'SEDFS_ERR_UNREACHABLE',
        message: 'not answering lately: passed over',
        attempted: false,
      });
      head += 1;
      continue;
    }
    try {
      const res = answer ?? (await putChunk(client, url, placement.ticket, bytes, server.id));
      answer = undefined;
      receipts.push(...res.receipts);
      const skipped = res.failed.filter((f) => !f.attempted);
      for (const f of res.failed.filter((f) => f.attempted)) {
        failures.push(f);
        // A server further down that did not answer the one before it.
        if (f.code === 'SEDFS_ERR_UNREACHABLE') client.unanswering.note(f.server, f.message);
      }
      if (skipped.length === 0) break;
      // Only a server further down the chain can be one the chain never reached; one
      // that names itself, an earlier one or a stranger ends the tries (the same server
      // asked again and again, for ever, otherwise).
      const next = placement.servers.findIndex((s) => s.id === skipped[0]?.server);
      if (next <= head) {
        failures.push({
          server: server.id,
          code: 'SEDFS_ERR_BAD_ANSWER',
          message: `named ${skipped[0]?.server.slice(0, 8)} as not reached, which is not further down the chain`,
          attempted: true,
        });
        break;
      }
      head = next;
    } catch (err) {
      const e = err instanceof SedfsError ? err : new SedfsError('SEDFS_ERR_INTERNAL', String(err));
      failures.push({ server: server.id, code: e.code, message: e.message, attempted: true });
      if (REQUEST_AT_FAULT.has(e.code)) requestAtFault = true;
      head += 1;
    }
  }
  return { receipts, failures, requestAtFault };
}

/**
 * Sends small chunks placed on the same chain in one request (`PUT /v1/chunks`), with
 * the batch's ticket; the answer has one result per chunk, in the batch's order.
 */
export async function sendBatch(
  client: ClusterClient,
  batch: PlacementBatch,
  bodies: Buffer[],
): Promise<PutBatchResponse> {
  const head = batch.servers[0] as { id: string; url: string };
  return putOctets(
    client,
    `${head.url}/v1/chunks`,
    bodies,
    {
      [TICKET_HEADER]: batch.ticket,
      [SIZES_HEADER]: bodies.map((b) => b.length).join(','),
    },
    head.id,
  );
}

function putChunk(
  client: ClusterClient,
  url: string,
  ticket: string,
  bytes: Buffer,
  serverId: string,
): Promise<PutChunkResponse> {
  return putOctets(client, url, [bytes], { [TICKET_HEADER]: ticket }, serverId);
}

/**
 * A PUT of raw bytes to file server `serverId` (put-octets.ts): loaded, with undici, at a
 * command's first upload, so that commands which upload nothing never load it.
 */
async function putOctets<T>(...args: Parameters<typeof import('./put-octets.js').putOctets>): Promise<T> {
  const { putOctets } = await import('./put-octets.js');
  return putOctets<T>(...args);
}
