import { createCipheriv, createDecipheriv, hkdfSync, type KeyObject } from 'node:crypto';
import { SedfsError } from '../protocol/errors.js';
import { randomBytesPooled } from './random.js';

/** AES-256-GCM sizes used everywhere in SEDFS. */
export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

/** Derives a purpose-bound subkey, so one node key never serves two purposes directly. */
export function deriveKey(ikm: Uint8Array, info: string, salt: Uint8Array = new Uint8Array(0)): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from(info, 'utf8'), KEY_BYTES));
}

export function randomKey(): Buffer {
  return randomBytesPooled(KEY_BYTES);
}

/** Encrypts with a random nonce: `nonce ‖ ciphertext ‖ tag`. For small values (keys, names). */
export function sealSymmetric(key: Uint8Array | KeyObject, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = randomBytesPooled(NONCE_BYTES);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([nonce, body, c.getAuthTag()]);
}

/** Opens `nonce ‖ ciphertext ‖ tag`; any change to it, the key or the AAD is one clear error. */
export function openSymmetric(
  key: Uint8Array | KeyObject,
  sealed: Uint8Array,
  aad: Uint8Array,
  what: string,
): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES)
    throw new SedfsError('SEDFS_ERR_DECRYPT', `${what} is too short`);
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const d = createDecipheriv('aes-256-gcm', key, buf.subarray(0, NONCE_BYTES));
  d.setAAD(aad);
  d.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
  try {
    const plain = d.update(buf.subarray(NONCE_BYTES, buf.length - TAG_BYTES));
    // GCM's final() gives no bytes, only the tag's verdict: no copy into a third buffer
    // (listing a folder opens two small values an entry).
    const rest = d.final();
    return rest.length === 0 ? plain : Buffer.concat([plain, rest]);
  } catch {
    throw new SedfsError('SEDFS_ERR_DECRYPT', `${what} could not be decrypted: wrong key or altered data`);
  }
}
