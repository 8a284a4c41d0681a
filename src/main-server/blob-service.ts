import type { Logger } from '../common/logger.js';
import { randomHexId } from '../crypto/hash.js';
import { receiptValid } from '../crypto/receipts.js';
import type { TicketSigner } from '../crypto/tickets.js';
import { SedfsError } from '../protocol/errors.js';
import { MAX_BATCH_CHUNKS, MAX_BATCHED_CHUNK_BYTES } from '../protocol/file-server-api.js';
import { MANIFEST_PAGE } from '../protocol/limits.js';
import type {
  BeginUploadResponse,
  BlobManifest,
  CommitRequest,
  CommitResponse,
  Placement,
  PlacementAnswer,
  PlacementAnswerResponse,
  PlacementBatch,
  PlacementRequest,
  ServerRef,
} from '../protocol/main-api.js';
import {
  allBarred,
  chooseTrustedFirst,
  clusterFull,
  noneOutside,
  notBarred,
  withRoomFor,
} from './placement.js';
import type { Registry } from './registry.js';
import type { CommittedChunk, MainStore } from './store/store.js';

/**
 * Bad-replica reports a user may make at once, and per minute after that: a reader of a
 * large file on a rotting disk reports each chunk it had to fetch elsewhere; past this
 * the scrubber finds the rest.
 */
const REPORT_BURST = 32;
const REPORTS_PER_MINUTE = 30;

export interface PreparedBlob {
  response: CommitResponse;
  /** Writes the blob, its chunks and replicas; run it inside the caller's transaction. */
  store: () => void;
  /** Logs the commit (at `level`; under-replication is always a warning), once it holds. */
  logCommitted: (level?: 'info' | 'debug') => void;
}

export interface BlobServiceOptions {
  replicas: number;
  ticketTtlMs: number;
  uploadTtlMs: number;
}

/**
 * Uploads, placement, commits and manifests: the storage half of main. An upload is
 * begun, its chunks placed (with write tickets) in batches as the client produces
 * them, and committed in one transaction once every chunk has storage receipts.
 */
export class BlobService {
  /** Each user's allowance of bad-replica reports: what is left, and when it was last counted. */
  private readonly reportAllowance = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly store: MainStore,
    private readonly registry: Registry,
    private readonly signer: TicketSigner,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly random: () => number,
    private readonly opts: BlobServiceOptions,
  ) {}

  begin(replicas?: number, userId?: string): BeginUploadResponse {
    // Refused at once when every live server is full: nothing could be placed.
    const live = this.registry.live();
    if (live.length > 0 && live.every((s) => s.freeBytes <= 0)) throw clusterFull(1);
    const now = this.now();
    const upload = {
      id: randomHexId(),
      ...(userId ? { userId } : {}),
      replicas: replicas ?? this.opts.replicas,
      createdAt: now,
      expiresAt: now + this.opts.uploadTtlMs,
    };
    this.store.createUpload(upload);
    return { uploadId: upload.id, replicas: upload.replicas, expiresAt: upload.expiresAt };
  }

  /** An upload is visible only to the user who began it. */
  private upload(uploadId: string, userId: string | undefined) {
    const upload = this.store.getUpload(uploadId, this.now());
    if (!upload || upload.userId !== userId) throw new SedfsError('SEDFS_ERR_UPLOAD_NOT_FOUND');
    return upload;
  }

  place(uploadId: string, req: PlacementRequest, userId?: string): PlacementAnswerResponse {
    const upload = this.upload(uploadId, userId);
    const live = this.registry.live().map((s) => ({ id: s.id, url: s.url, freeBytes: s.freeBytes }));
    if (live.length === 0) throw new SedfsError('SEDFS_ERR_NO_SERVERS');
    const exp = this.now() + this.opts.ticketTtlMs;
    // Servers without room for a chunk are not chosen; what this request places counts
    // against each server's reported space, so one nearly full is not given many at once.
    let fewest = live.length;
    /** some chunk is placed on fewer servers than asked for */
    let short = false;
    /** ... because of the servers the client asked to leave out, not of room */
    let leftOut = 0;
    const barred = this.store.barredFrom(req.chunks.map((c) => c.id));
    const chosen = req.chunks.map((c) => {
      const open = notBarred(live, barred.get(c.id));
      if (withRoomFor(open, c.size).length === 0)
        throw withRoomFor(live, c.size).length > 0 ? allBarred(c.id) : clusterFull(c.size);
      // Servers the client asks to leave out: those of a chain that did not all store it.
      const room = withRoomFor(
        open.filter((s) => !c.exclude?.includes(s.id)),
        c.size,
      );
      if (room.length === 0) throw noneOutside(c.id, c.exclude?.length ?? 0);
      const wanted = Math.min(c.replicas ?? upload.replicas, upload.replicas);
      fewest = Math.min(fewest, room.length);
      if (room.length < wanted) {
        short = true;
        if (withRoomFor(open, c.size).length >= wanted) leftOut = Math.max(leftOut, c.exclude?.length ?? 0);
      }
      const servers = chooseTrustedFirst(room, wanted, this.random, (id) => this.registry.trusted(id));
      for (const s of servers) (room.find((r) => r.id === s.id) as { freeBytes: number }).freeBytes -= c.size;
      return { chunk: c.id, servers };
    });
    this.store.recordPlacements(
      uploadId,
      chosen.map((p) => ({ chunkId: p.chunk, serverIds: p.servers.map((s) => s.id) })),
    );
    const grouped = this.batchesOf(uploadId, chosen, req.chunks, exp);
    const batches = grouped.map((g) => g.batch);
    /** the batch each placement's chunk went in, by placement, when the client asked for batch tickets */
    const batchOf = new Map(
      req.batchTickets ? grouped.flatMap((g, k) => g.members.map((i) => [i, k] as const)) : [],
    );
    // A ticket of its own for each chunk cost main an Ed25519 signature (~35 µs) per
    // small file, a quarter of its time placing and committing 2,000 of them: a chunk in
    // a batch is sent under its batch's ticket, which names it and the same chain.
    const placements: PlacementAnswer[] = chosen.map((p, i) => {
      const batch = batchOf.get(i);
      if (batch !== undefined) return { ...p, batch };
      const ticket = this.signer.sign({
        op: 'write',
        chunks: [p.chunk],
        servers: p.servers.map((s) => s.id),
        urls: p.servers.map((s) => s.url),
        upload: uploadId,
        exp,
      });
      return { ...p, ticket };
    });
    const answer = batches.length > 0 ? { placements, batches } : { placements };
    if (!short) return answer;
    const warning =
      live.length < upload.replicas
        ? `only ${live.length} of ${upload.replicas} wanted file servers are up: chunks will be under-replicated`
        : leftOut > 0
          ? `only ${fewest} of the file servers up with room are not among the ${leftOut} this client left out (${upload.replicas} wanted): chunks will be under-replicated`
          : `only ${fewest} of the file servers up have room for some chunks (${upload.replicas} wanted): they will be under-replicated`;
    this.log.warn(
      { upload: uploadId, live: live.length, withRoom: fewest, wanted: upload.replicas },
      'placing with fewer replicas than wanted',
    );
    return { ...answer, warning };
  }

  /**
   * Small chunks on the same chain, grouped under one ticket each (`PUT /v1/chunks`).
   * Only chunks small enough to batch, and only groups of two or more, are worth it.
   */
  private batchesOf(
    uploadId: string,
    placements: Omit<Placement, 'ticket'>[],
    chunks: { size: number }[],
    exp: number,
  ): { batch: PlacementBatch; members: number[] }[] {
    /** placements' indexes by chain */
    const byChain = new Map<string, number[]>();
    const seen = new Set<string>();
    placements.forEach((p, i) => {
      if ((chunks[i]?.size ?? Number.POSITIVE_INFINITY) > MAX_BATCHED_CHUNK_BYTES) return;
      // A chunk asked for twice goes in no batch twice (file servers refuse that).
      if (seen.has(p.chunk)) return;
      seen.add(p.chunk);
      const chain = p.servers.map((s) => s.id).join(',');
      byChain.set(chain, [...(byChain.get(chain) ?? []), i]);
    });
    const batches: { batch: PlacementBatch; members: number[] }[] = [];
    for (const group of byChain.values()) {
      for (let i = 0; i < group.length; i += MAX_BATCH_CHUNKS) {
        const members = group.slice(i, i + MAX_BATCH_CHUNKS);
        if (members.length < 2) continue;
        const servers = (placements[members[0] as number] as Placement).servers;
        const ids = members.map((k) => (placements[k] as Placement).chunk);
        const ticket = this.signer.sign({
          op: 'write',
          chunks: ids,
          servers: servers.map((s) => s.id),
          urls: servers.map((s) => s.url),
          upload: uploadId,
          exp,
        });
        batches.push({ batch: { chunks: ids, servers, ticket }, members });
      }
    }
    return batches;
  }

  /**
   * Checks every chunk's receipts and returns the blob ready to store; `store` may run
   * inside a larger transaction (a file version commits with its blob). A receipt counts
   * only if it was made for this upload (receipts name the upload their write ticket was
   * signed for) by a server this upload placed the chunk on. A receipt for a copy main
   * holds corrupt or is deleting is valid but not counted: the commit changes nothing
   * main decided about a copy (`commitBlob`), and a chunk left with no good copy at all
   * is refused.
   */
  prepare(uploadId: string, req: CommitRequest, userId?: string): PreparedBlob {
    return this.prepareMany(uploadId, [req], userId)[0] as PreparedBlob;
  }

  /**
   * `prepare` for each of many blobs of one upload (a batch of small files), the upload
   * and the servers' receipt keys read once for all: read for each file, they were most
   * of main's time committing 2,000 small files.
   */
  prepareMany(uploadId: string, reqs: CommitRequest[], userId?: string): PreparedBlob[] {
    const upload = this.upload(uploadId, userId);
    const keys = new Map<string, string>();
    return reqs.map((req) => this.prepareOne(uploadId, upload, keys, req, userId));
  }

  private prepareOne(
    uploadId: string,
    upload: { replicas: number },
    /** receipt keys by server, filled as they are read */
    keys: Map<string, string>,
    req: CommitRequest,
    userId: string | undefined,
  ): PreparedBlob {
    let uncounted = 0;
    const chunks: CommittedChunk[] = req.chunks.map((c) => {
      const { placed, barred } = this.store.placedIn(uploadId, c.id);
      const servers = new Set<string>();
      for (const r of c.receipts) {
        let key = keys.get(r.server);
        if (key === undefined) {
          key = this.store.getServer(r.server)?.receiptKey ?? '';
          keys.set(r.server, key);
        }
        if (
          key === '' ||
          !placed.includes(r.server) ||
          !receiptValid(key, r.server, c.id, c.size, uploadId, r.receipt)
        ) {
          throw new SedfsError('SEDFS_ERR_RECEIPT_INVALID', undefined, { chunk: c.id, server: r.server });
        }
        if (barred.includes(r.server)) uncounted++;
        else servers.add(r.server);
      }
      if (servers.size === 0 && (this.store.replicasOf([c.id]).get(c.id) ?? []).length === 0) {
        throw new SedfsError(
          'SEDFS_ERR_RECEIPT_INVALID',
          'every receipt for this chunk is for a copy main holds corrupt or is deleting, and it has no good copy',
          { chunk: c.id },
        );
      }
      return { id: c.id, size: c.size, servers: [...servers] };
    });
    if (uncounted > 0)
      this.log.warn(
        { upload: uploadId, receipts: uncounted },
        'receipts for copies main holds corrupt or is deleting: not counted, repair restores the count',
      );
    const blobId = randomHexId();
    const size = chunks.reduce((n, c) => n + c.size, 0);
    const underReplicated = chunks.filter((c) => c.servers.length < upload.replicas).length;
    const record = {
      id: blobId,
      ...(userId ? { userId } : {}),
      uploadId,
      wanted: upload.replicas,
      createdAt: this.now(),
      chunks,
    };
    return {
      response: { blobId, size, chunks: chunks.length, underReplicated },
      store: () => this.store.commitBlob(record),
      logCommitted: (level = 'info') => {
        if (underReplicated > 0) {
          this.log.warn(
            { blob: blobId, underReplicated, wanted: upload.replicas },
            'committed under-replicated chunks',
          );
        }
        this.log[level]({ blob: blobId, upload: uploadId, chunks: chunks.length, size }, 'blob committed');
      },
    };
  }

  /** Commits a bare blob (no namespace entry). */
  commit(uploadId: string, req: CommitRequest, userId?: string): CommitResponse {
    const prepared = this.prepare(uploadId, req, userId);
    prepared.store();
    prepared.logCommitted();
    return prepared.response;
  }

  /**
   * A bare blob's manifest, for the user who stored it, from chunk `from` (MANIFEST_PAGE
   * chunks at most). A file's version is read through the file, whose permissions hold:
   * a writer who committed a version and was revoked since cannot fetch it this way.
   */
  manifestFor(blobId: string, userId: string | undefined, from = 0): BlobManifest {
    const blob = this.store.getBlob(blobId, { from: 0, count: 0 });
    if (!blob || blob.userId !== userId || this.store.isVersionBlob(blobId))
      throw new SedfsError('SEDFS_ERR_NOT_FOUND');
    return this.manifest(blobId, { from, count: MANIFEST_PAGE });
  }

  /**
   * The blob's chunks from `from` (default 0), at most `count`, each with a read ticket.
   * `maxChunks`: refuse (SEDFS_ERR_BATCH_FULL) a blob of more chunks, before signing any ticket.
   */
  manifest(blobId: string, opts: { from?: number; count?: number; maxChunks?: number } = {}): BlobManifest {
    const from = opts.from ?? 0;
    const blob = this.store.getBlob(blobId, { from, count: opts.count ?? -1 });
    if (!blob) throw new SedfsError('SEDFS_ERR_NOT_FOUND');
    if (opts.maxChunks !== undefined && blob.chunkCount > opts.maxChunks)
      throw new SedfsError('SEDFS_ERR_BATCH_FULL');
    // From just past the last chunk is an empty page (a reader paging to the end).
    if (from > blob.chunkCount)
      throw new SedfsError(
        'SEDFS_ERR_BAD_REQUEST',
        `the file has ${blob.chunkCount} chunks: none from ${from}`,
      );
    const chunks = blob.chunks;
    const live = new Map<string, ServerRef>(
      this.registry.live().map((s) => [s.id, { id: s.id, url: s.url }]),
    );
    const holders = this.store.replicasOf(chunks.map((c) => c.id));
    const exp = this.now() + this.opts.ticketTtlMs;
    return {
      id: blob.id,
      size: blob.size,
      chunks: chunks.map((c) => {
        const replicas = (holders.get(c.id) ?? []).flatMap((id) => live.get(id) ?? []);
        // Spread reads: each chunk starts at a different replica.
        if (replicas.length > 1) replicas.push(...replicas.splice(0, c.index % replicas.length));
        const ticket = this.signer.sign({
          op: 'read',
          chunks: [c.id],
          servers: replicas.map((r) => r.id),
          exp,
        });
        return { index: c.index, id: c.id, size: c.size, replicas, ticket };
      }),
    };
  }

  /**
   * A reader saw bytes that did not match: true if the server should re-check them. Only
   * a good replica main records there is worth it, and only within the reader's allowance,
   * so no user can keep servers re-hashing chunks (which main cannot cheaply tell they
   * may read) without bound.
   */
  reportBadReplica(userId: string, chunkId: string, serverId: string): boolean {
    if (!(this.store.replicasOf([chunkId]).get(chunkId) ?? []).includes(serverId)) {
      this.log.info({ chunk: chunkId, server: serverId, user: userId }, 'report of no good replica: ignored');
      return false;
    }
    if (!this.takeReport(userId)) {
      this.log.debug(
        { chunk: chunkId, server: serverId, user: userId },
        'replica report over the allowance: ignored',
      );
      return false;
    }
    this.log.warn({ chunk: chunkId, server: serverId, user: userId }, 'replica reported corrupt by a reader');
    return true;
  }

  /** Takes one report from the user's allowance (a token bucket); false when it is spent. */
  private takeReport(userId: string): boolean {
    const now = this.now();
    const refill = (b: { tokens: number; at: number }) =>
      Math.min(REPORT_BURST, b.tokens + ((now - b.at) / 60_000) * REPORTS_PER_MINUTE);
    if (this.reportAllowance.size >= 10_000)
      for (const [id, b] of this.reportAllowance)
        if (refill(b) >= REPORT_BURST) this.reportAllowance.delete(id);
    const bucket = this.reportAllowance.get(userId);
    const tokens = bucket ? refill(bucket) : REPORT_BURST;
    if (tokens < 1) return false;
    this.reportAllowance.set(userId, { tokens: tokens - 1, at: now });
    return true;
  }
}
