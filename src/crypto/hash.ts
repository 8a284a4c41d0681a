import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { randomBytesPooled } from './random.js';

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Incremental SHA-256, for hashing a stream as it passes. */
export interface Hasher {
  update(data: Uint8Array): void;
  digestHex(): string;
}

export function sha256Hasher(): Hasher {
  const h = createHash('sha256');
  return {
    update: (data) => {
      h.update(data);
    },
    digestHex: () => h.digest('hex'),
  };
}

export function hmacSha256Hex(key: Uint8Array, message: string): string {
  return createHmac('sha256', key).update(message).digest('hex');
}

/** Compares two secrets without leaking where they differ (hashing first equalises lengths). */
export function secretsEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** A random secret as base64url text (join tokens, receipt keys). */
export function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** A random identifier as lowercase hex (server ids, upload ids, blob ids). */
export function randomHexId(bytes = 16): string {
  return randomBytesPooled(bytes).toString('hex');
}

/** Fills a buffer with random bytes (test data, benchmarks). */
export { randomFillSync } from 'node:crypto';
