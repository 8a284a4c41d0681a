import { type Static, Type } from '@sinclair/typebox';
import { MAX_EXCLUDED } from './limits.js';
import { VersionCommit } from './namespace-api.js';
import { ChunkId, HexId, strict } from './schemas.js';

/** Wire schemas of main's HTTP API. Routes validate with them; clients type with them. */

export { ChunkId, HexId } from './schemas.js';

const Bytes = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

export const IdParams = Type.Object({ id: HexId }, strict);
export const ChunkParams = Type.Object({ id: ChunkId }, strict);

export const ServerStatsBody = Type.Object(
  {
    totalBytes: Bytes,
    freeBytes: Bytes,
    usedBytes: Bytes,
    chunkCount: Bytes,
    /**
     * Sent (only) while the server cannot read its file system's free space (`statfs`
     * fails, as on some network shares): `freeBytes` is then its estimate.
     */
    freeUnknown: Type.Optional(Type.Literal(true)),
  },
  strict,
);
export type ServerStatsBody = Static<typeof ServerStatsBody>;

/** Most chunk ids of each kind one heartbeat carries. */
export const HEARTBEAT_MAX_CHANGES = 10_000;

/** Stats, plus the chunks the server gained and lost since its last heartbeat. */
export const HeartbeatRequest = Type.Object(
  {
    ...ServerStatsBody.properties,
    added: Type.Optional(Type.Array(ChunkId, { maxItems: HEARTBEAT_MAX_CHANGES })),
    removed: Type.Optional(Type.Array(ChunkId, { maxItems: HEARTBEAT_MAX_CHANGES })),
  },
  strict,
);
export type HeartbeatRequest = Static<typeof HeartbeatRequest>;

export const RegisterRequest = Type.Object(
  {
    id: HexId,
    /** Port the file server listens on; main pairs it with the address the request came from. */
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    /** Set when the server knows the URL others must use (`--advertise`). */
    url: Type.Optional(Type.String({ maxLength: 2048, pattern: '^https?://[^\\s,]+$' })),
    stats: ServerStatsBody,
  },
  strict,
);
export type RegisterRequest = Static<typeof RegisterRequest>;

/** A file server asks for its certificate (join token as bearer); see `EnrollResponse`. */
export const EnrollRequest = Type.Object(
  {
    id: HexId,
    /** its TLS public key, SPKI PEM */
    publicKey: Type.String({ minLength: 1, maxLength: 1024 }),
    url: Type.Optional(Type.String({ maxLength: 2048, pattern: '^https?://[^\\s,]+$' })),
  },
  strict,
);
export type EnrollRequest = Static<typeof EnrollRequest>;

export interface EnrollResponse {
  /** its certificate, signed by the cluster CA, naming the host main will publish for it */
  cert: string;
  ca: string;
}

export interface RotateJoinTokenResponse {
  /** the new join string, `sedfs://TOKEN@HOST:PORT#FINGERPRINT` */
  join: string;
}

export interface CaResponse {
  /** the cluster CA certificate, PEM; check its fingerprint before trusting it */
  ca: string;
}

export interface HeartbeatResponse {
  ok: true;
  /** servers an admin removed: their certificates are refused */
  removed: string[];
  /** main's clock as it answered (see LISTED_AFTER_HEADER); absent from mains before it */
  at?: number;
}

export interface RegisterResponse {
  id: string;
  url: string;
  receiptKey: string;
  ticketPublicKey: string;
  heartbeatIntervalMs: number;
  /** main's clock as it answered (see LISTED_AFTER_HEADER); absent from mains before it */
  at?: number;
}

/**
 * On a full inventory a file server sends main: the `at` of main's last answer before the
 * server began listing. Main counts a replica missing from the list only if it recorded
 * it before then: one committed while the list was on its way (its chunk written after
 * the listing passed it) is not dropped. Main's own clock, so no two clocks are compared.
 */
export const LISTED_AFTER_HEADER = 'x-sedfs-listed-after';

export interface InventoryResponse {
  reported: number;
  missing: number;
  extra: number;
}

/** `enrolled`: got a certificate with the join token but never registered. */
export type ServerState = 'up' | 'down' | 'removed' | 'enrolled';

export interface ServerView {
  id: string;
  url: string;
  state: ServerState;
  totalBytes: number;
  freeBytes: number;
  /** the server cannot read its free space: `freeBytes` is its estimate, placement's too */
  freeUnknown?: true;
  usedBytes: number;
  chunkCount: number;
  lastHeartbeat: number;
  missing: number;
  extra: number;
}

export interface ServersResponse {
  servers: ServerView[];
}

export const BeginUploadRequest = Type.Object(
  { replicas: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })) },
  strict,
);
export type BeginUploadRequest = Static<typeof BeginUploadRequest>;

export interface BeginUploadResponse {
  uploadId: string;
  replicas: number;
  expiresAt: number;
}

/** Most chunks one placement request may ask for: small files are placed in batches. */
export const MAX_PLACEMENT_BATCH = 1024;

export const PlacementRequest = Type.Object(
  {
    chunks: Type.Array(
      Type.Object(
        {
          id: ChunkId,
          size: Bytes,
          /**
           * Servers not to place it on, and how many copies (at most the upload's): a client
           * asks so for others in place of servers that refused the chunk for space.
           */
          exclude: Type.Optional(Type.Array(HexId, { maxItems: MAX_EXCLUDED })),
          replicas: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })),
        },
        strict,
      ),
      {
        minItems: 1,
        maxItems: MAX_PLACEMENT_BATCH,
      },
    ),
    /**
     * Placements of chunks that go in a batch come without a ticket of their own (`batch`
     * instead): the client sends such a chunk alone, when it must, under its batch's.
     */
    batchTickets: Type.Optional(Type.Boolean()),
  },
  strict,
);
export type PlacementRequest = Static<typeof PlacementRequest>;

export interface ServerRef {
  id: string;
  url: string;
}

export interface Placement {
  chunk: string;
  /** The chain: the client sends to the first, which forwards to the rest in order. */
  servers: ServerRef[];
  /** The write ticket: of this chunk alone, or (`batch`, when asked for) of its batch. */
  ticket: string;
}

/** A placement as it comes: with `batchTickets`, a batched chunk's names its batch instead of a ticket. */
export type PlacementAnswer = Omit<Placement, 'ticket'> & ({ ticket: string } | { batch: number });

/** Chunks placed on the same chain, with one write ticket for them all (see `PUT /v1/chunks`). */
export interface PlacementBatch {
  chunks: string[];
  servers: ServerRef[];
  ticket: string;
}

export interface PlacementResponse {
  placements: Placement[];
  /**
   * When several small chunks were placed: the same placements grouped by chain, at
   * most MAX_BATCH_CHUNKS each, so a client can send each group in one request.
   */
  batches?: PlacementBatch[];
  /** Set when fewer live servers than the wanted replicas exist. */
  warning?: string;
}

/** Main's answer as sent: placements as they come with `batchTickets` (see PlacementAnswer). */
export type PlacementAnswerResponse = Omit<PlacementResponse, 'placements'> & {
  placements: PlacementAnswer[];
};

export const Receipt = Type.Object(
  { server: HexId, receipt: Type.String({ pattern: '^[0-9a-f]{64}$' }) },
  strict,
);
export type Receipt = Static<typeof Receipt>;

export const CommitRequest = Type.Object(
  {
    chunks: Type.Array(
      Type.Object(
        { id: ChunkId, size: Bytes, receipts: Type.Array(Receipt, { minItems: 1, maxItems: 16 }) },
        strict,
      ),
      { maxItems: 1_000_000 },
    ),
    /** Present when the blob becomes a file version; absent for a bare blob. */
    version: Type.Optional(VersionCommit),
  },
  strict,
);
export type CommitRequest = Static<typeof CommitRequest>;
/** Most files one batch commit may make. */
export const COMMIT_FILES_MAX = 1000;

/**
 * Many small files from one upload, committed in one transaction: each is a blob (its
 * chunks) that becomes a file version. All land, or none does.
 */
export const CommitFilesRequest = Type.Object(
  {
    files: Type.Array(
      Type.Object({ chunks: CommitRequest.properties.chunks, version: VersionCommit }, strict),
      { minItems: 1, maxItems: COMMIT_FILES_MAX },
    ),
  },
  strict,
);
export type CommitFilesRequest = Static<typeof CommitFilesRequest>;

/** A commit lists every chunk with its receipts: about 400 bytes a chunk. */
export const COMMIT_BODY_LIMIT = 64 * 1024 * 1024;

export interface CommitResponse {
  blobId: string;
  size: number;
  chunks: number;
  /** chunks stored on fewer servers than wanted */
  underReplicated: number;
}

export interface ManifestChunk {
  index: number;
  id: string;
  size: number;
  replicas: ServerRef[];
  ticket: string;
}

export interface BlobManifest {
  id: string;
  size: number;
  chunks: ManifestChunk[];
}

export const BadReplicaRequest = Type.Object({ server: HexId }, strict);
export type BadReplicaRequest = Static<typeof BadReplicaRequest>;

/** One server's answer to `check --verify`: replicas re-hashed and found corrupt. */
export interface ScrubResult {
  server: string;
  checked: number;
  corrupt: number;
  /** set when the server could not be asked */
  error?: string;
}

export interface CheckResponse {
  servers: {
    id: string;
    url: string;
    state: ServerState;
    chunks: number;
    /** from the last full inventory: expected there but absent, and present but unexpected */
    missing: number;
    extra: number;
    /** replicas there that have failed a hash check so far */
    corrupt: number;
    /** when its last full inventory was compared (ms since the epoch; 0 = never) */
    inventoryAt: number;
    /** replicas main read back from it since main started: whole and right, or not there or wrong */
    audits: { passed: number; failed: number };
  }[];
  chunks: number;
  /** chunks with fewer good copies than wanted on servers that are not lost: the repair queue */
  underReplicated: number;
  /** of those, chunks with no good copy on a live server, summed over repair's last whole sweep of the map: repair cannot restore them until a holder is back */
  withoutLiveCopy: number;
  /** copies beyond a chunk's wanted count, waiting out the grace period before removal */
  surplus: number;
  repair: { chunks: number; bytes: number; failures: number };
  /** with `--verify`: what each server's re-hash found */
  verify?: ScrubResult[];
}

export const CheckRepairRequest = Type.Object(
  { verify: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);
export type CheckRepairRequest = Static<typeof CheckRepairRequest>;
