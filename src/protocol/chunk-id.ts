import { SedfsError } from './errors.js';

/** A chunk id is the SHA-256 of the chunk's stored bytes, as 64 lowercase hex characters. */
const CHUNK_ID = /^[0-9a-f]{64}$/;

export function isChunkId(value: unknown): value is string {
  return typeof value === 'string' && CHUNK_ID.test(value);
}

export function assertChunkId(value: unknown): string {
  if (!isChunkId(value)) throw new SedfsError('SEDFS_ERR_BAD_CHUNK_ID');
  return value;
}

/** JSON-schema fragment shared by every route that names a chunk. */
export const CHUNK_ID_PATTERN = '^[0-9a-f]{64}$';
