import { hmacSha256Hex, secretsEqual } from './hash.js';

/**
 * A storage receipt is a file server's proof, checkable by main, that it durably holds
 * a chunk. It is an HMAC under a key main gave that server at registration, so a client
 * cannot forge one and main needs no extra round trip to believe a commit.
 */
export function receiptFor(receiptKey: string, serverId: string, chunkId: string, size: number): string {
  return hmacSha256Hex(
    Buffer.from(receiptKey, 'base64url'),
    `sedfs-receipt-v1\n${serverId}\n${chunkId}\n${size}`,
  );
}

export function receiptValid(
  receiptKey: string,
  serverId: string,
  chunkId: string,
  size: number,
  receipt: string,
): boolean {
  return secretsEqual(receiptFor(receiptKey, serverId, chunkId, size), receipt);
}
