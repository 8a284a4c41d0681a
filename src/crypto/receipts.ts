import { hmacSha256Hex, secretsEqual } from './hash.js';

/**
 * A storage receipt is a file server's proof, checkable by main, that it durably holds
 * a chunk. It is an HMAC under a key main gave that server at registration, so a client
 * cannot forge one and main needs no extra round trip to believe a commit. It names the
 * upload the write ticket was signed for (`upload` in the ticket; a repair copy's own id
 * for a copy main ordered), so it proves a write for that upload only: main takes it in
 * that upload's commit and nowhere else, and a receipt kept from an earlier upload proves
 * nothing about what the server holds now.
 */
export function receiptFor(
  receiptKey: string,
  serverId: string,
  chunkId: string,
  size: number,
  upload: string,
): string {
  return hmacSha256Hex(
    Buffer.from(receiptKey, 'base64url'),
    `sedfs-receipt-v2\n${serverId}\n${chunkId}\n${size}\n${upload}`,
  );
}

export function receiptValid(
  receiptKey: string,
  serverId: string,
  chunkId: string,
  size: number,
  upload: string,
  receipt: string,
): boolean {
  return secretsEqual(receiptFor(receiptKey, serverId, chunkId, size, upload), receipt);
}
