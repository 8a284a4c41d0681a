import type { Logger } from '../common/logger.js';
import { randomHexId } from '../crypto/hash.js';
import { receiptValid } from '../crypto/receipts.js';
import type { TicketSigner } from '../crypto/tickets.js';
import { SedfsError } from '../protocol/errors.js';
import type {
  BeginUploadResponse,
  BlobManifest,
  CommitRequest,
  CommitResponse,
  PlacementRequest,
  PlacementResponse,
  ServerRef,
} from '../protocol/main-api.js';
import { chooseReplicas } from './placement.js';
import type { Registry } from './registry.js';
import type { CommittedChunk, MainStore } from './store/store.js';

export interface PreparedBlob {
  response: CommitResponse;
  /** Writes the blob, its chunks and replicas; run it inside the caller's transaction. */
  store: () => void;
  logCommitted: () => void;
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

  place(uploadId: string, req: PlacementRequest, userId?: string): PlacementResponse {
    const upload = this.upload(uploadId, userId);
    const live = this.registry.live().map((s) => ({ id: s.id, url: s.url, freeBytes: s.freeBytes }));
    if (live.length === 0) throw new SedfsError('SEDFS_ERR_NO_SERVERS');
    const exp = this.now() + this.opts.ticketTtlMs;
    const placements = req.chunks.map((c) => {
      const servers = chooseReplicas(live, upload.replicas, this.random);
      const ticket = this.signer.sign({
        op: 'write',
        chunks: [c.id],
        servers: servers.map((s) => s.id),
        urls: servers.map((s) => s.url),
        exp,
      });
      return { chunk: c.id, servers, ticket };
    });
    this.store.recordPlacements(
      uploadId,
      placements.map((p) => ({ chunkId: p.chunk, serverIds: p.servers.map((s) => s.id) })),
    );
    if (live.length >= upload.replicas) return { placements };
    const warning = `only ${live.length} of ${upload.replicas} wanted file servers are up: chunks will be under-replicated`;
    this.log.warn(
      { upload: uploadId, live: live.length, wanted: upload.replicas },
      'placing with fewer replicas than wanted',
    );
    return { placements, warning };
  }

  /**
   * Checks every chunk's receipts and returns the blob ready to store; `store` may run
   * inside a larger transaction (a file version commits with its blob).
   */
  prepare(uploadId: string, req: CommitRequest, userId?: string): PreparedBlob {
    const upload = this.upload(uploadId, userId);
    const keys = new Map<string, string>();
    const chunks: CommittedChunk[] = req.chunks.map((c) => {
      const servers = new Set<string>();
      for (const r of c.receipts) {
        let key = keys.get(r.server);
        if (key === undefined) {
          key = this.store.getServer(r.server)?.receiptKey ?? '';
          keys.set(r.server, key);
        }
        if (key === '' || !receiptValid(key, r.server, c.id, c.size, r.receipt)) {
          throw new SedfsError('SEDFS_ERR_RECEIPT_INVALID', undefined, { chunk: c.id, server: r.server });
        }
        servers.add(r.server);
      }
      return { id: c.id, size: c.size, servers: [...servers] };
    });
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
      logCommitted: () => {
        if (underReplicated > 0) {
          this.log.warn(
            { blob: blobId, underReplicated, wanted: upload.replicas },
            'committed under-replicated chunks',
          );
        }
        this.log.info({ blob: blobId, upload: uploadId, chunks: chunks.length, size }, 'blob committed');
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

  /** A bare blob's manifest, for the user who stored it. */
  manifestFor(blobId: string, userId: string | undefined): BlobManifest {
    const blob = this.store.getBlob(blobId);
    if (!blob || blob.userId !== userId) throw new SedfsError('SEDFS_ERR_NOT_FOUND');
    return this.manifest(blobId);
  }

  manifest(blobId: string): BlobManifest {
    const blob = this.store.getBlob(blobId);
    if (!blob) throw new SedfsError('SEDFS_ERR_NOT_FOUND');
    const live = new Map<string, ServerRef>(
      this.registry.live().map((s) => [s.id, { id: s.id, url: s.url }]),
    );
    const holders = this.store.replicasOf(blob.chunks.map((c) => c.id));
    const exp = this.now() + this.opts.ticketTtlMs;
    return {
      id: blob.id,
      size: blob.size,
      chunks: blob.chunks.map((c) => {
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

  /** A reader saw bytes that did not match; the repairer has the server re-check them. */
  reportBadReplica(chunkId: string, serverId: string): void {
    this.log.warn({ chunk: chunkId, server: serverId }, 'replica reported corrupt by a reader');
  }
}
