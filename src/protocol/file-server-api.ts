import type { ErrorCode } from './errors.js';

/** A file server's answer to a chunk write: proof for each replica that holds it, and what failed. */
export interface StoredReceipt {
  server: string;
  receipt: string;
}

export interface ReplicaFailure {
  server: string;
  code: ErrorCode;
  message: string;
  /** false when the chain broke before this server was tried; the client may send to it directly */
  attempted: boolean;
}

export interface PutChunkResponse {
  receipts: StoredReceipt[];
  failed: ReplicaFailure[];
}

/**
 * The size of a stored chunk as clients cut files by default: 4 MiB of plaintext and
 * the 16-byte authentication tag its sealing adds. Buffers meant to hold a whole chunk
 * are this size, or every default chunk would miss them by 16 bytes.
 */
export const DEFAULT_SEALED_CHUNK_BYTES = 4 * 1024 * 1024 + 16;

/**
 * Repair copies main keeps in flight by default (`--repair-concurrency`), and a file
 * server's buffers for receiving them. W6 (1 GiB onto a wiped server, 3 interleaved
 * pairs of 2 rounds): 4 at once 353–403 MiB/s, 8 at once 397–457; 12 no faster (407–454).
 */
export const REPAIR_COPIES_AT_ONCE = 8;

/**
 * Small chunks travel in batches: `PUT /v1/chunks` with one write ticket naming every
 * chunk in body order, their sizes in this header (comma-separated), and the chunks
 * back to back as the body. One request and one ticket check per chain instead of one
 * per chunk; every chunk is still hashed, stored and answered for on its own.
 */
export const SIZES_HEADER = 'x-sedfs-sizes';
/** At most this many chunks per batch (the ticket that names them must stay small). */
export const MAX_BATCH_CHUNKS = 48;
/** At most this many bytes per batch. */
export const MAX_BATCH_BYTES = 16 * 1024 * 1024;
/** Chunks up to this size are batched; larger ones gain nothing from it. */
export const MAX_BATCHED_CHUNK_BYTES = 256 * 1024;

export interface PutBatchResponse {
  /** one answer per chunk, in the ticket's order */
  results: PutChunkResponse[];
}
