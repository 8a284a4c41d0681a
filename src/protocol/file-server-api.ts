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
