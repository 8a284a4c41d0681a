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

  begin(replicas?: number): BeginUploadResponse {
    const now = this.now();
    const upload = {
      id: randomHexId(),
      replicas: replicas ?? this.opts.replicas,
      createdAt: now,
      expiresAt: now + this.opts.uploadTtlMs,
    };
    this.store.createUpload(upload);
    return { uploadId: upload.id, replicas: upload.replicas, expiresAt: upload.expiresAt };
  }

  place(uploadId: string, req: PlacementRequest): PlacementResponse {
    const upload = this.store.getUpload(uploadId, this.now());
    if (!upload) throw new SedfsError('SEDFS_ERR_UPLOAD_NOT_FOUND');
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
    if (live.length >= upload.replicas) return { placements };
    const warning = `only ${live.length} of ${upload.replicas} wanted file servers are up: chunks will be under-replicated`;
    this.log.warn(
      { upload: uploadId, live: live.length, wanted: upload.replicas },
      'placing with fewer replicas than wanted',
    );
    return { placements, warning };
  }

  commit(uploadId: string, req: CommitRequest): CommitResponse {
    const upload = this.store.getUpload(uploadId, this.now());
    if (!upload) throw new SedfsError('SEDFS_ERR_UPLOAD_NOT_FOUND');
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
    this.store.commitBlob({ id: blobId, uploadId, wanted: upload.replicas, createdAt: this.now(), chunks });
    const underReplicated = chunks.filter((c) => c.servers.length < upload.replicas).length;
    const size = chunks.reduce((n, c) => n + c.size, 0);
    if (underReplicated > 0) {
      this.log.warn(
        { blob: blobId, underReplicated, wanted: upload.replicas },
        'committed under-replicated chunks',
      );
    }
    this.log.info({ blob: blobId, upload: uploadId, chunks: chunks.length, size }, 'blob committed');
    return { blobId, size, chunks: chunks.length, underReplicated };
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

  /**
   * A reader saw bytes that did not match. Only logged for now: a client's word alone
   * must not take a replica out of service, so the self-healing work re-verifies on
   * the server before acting.
   */
  reportBadReplica(chunkId: string, serverId: string): void {
    this.log.warn({ chunk: chunkId, server: serverId }, 'replica reported corrupt by a reader');
  }
}
