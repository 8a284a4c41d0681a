import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { SedfsError } from '../protocol/errors.js';
import { deriveKey, openSymmetric, sealSymmetric } from './aead.js';
import { sha256Hex } from './hash.js';

/**
 * A user's identity: an Ed25519 key that signs (login challenges) and an X25519 key
 * that receives sealed node keys. Keys travel as raw 32-byte values in base64url.
 */
export interface PublicIdentity {
  signKey: string;
  boxKey: string;
}

export interface SecretIdentity extends PublicIdentity {
  signSecret: string;
  boxSecret: string;
}

/**
 * The raw 32-byte key: the end of its DER form (SPKI for a public key, PKCS#8 for a
 * private one; Ed25519's and X25519's put the key last). Not through JWK: on Node 20 a
 * JWK export holds the key's lock while it builds the JS object, and a garbage collection
 * in between that frees the job which generated the key takes the same lock, so the
 * process hangs for good (seen: a test process stuck in a futex, and a loop of
 * generate-and-export stuck within a minute; the DER form ran 400,000 rounds).
 */
function raw(key: KeyObject): string {
  const der =
    key.type === 'public'
      ? key.export({ format: 'der', type: 'spki' })
      : key.export({ format: 'der', type: 'pkcs8' });
  // 12 bytes of SPKI header, 16 of PKCS#8 v1's; a v2 (public key appended) would end in
  // the public key, so any other length is refused rather than misread.
  if (der.length !== (key.type === 'public' ? 44 : 48))
    throw new Error(`unexpected ${key.asymmetricKeyType} ${key.type} key encoding (${der.length} bytes)`);
  return der.subarray(der.length - 32).toString('base64url');
}

export function generateIdentity(): SecretIdentity {
  const s = generateKeyPairSync('ed25519');
  const b = generateKeyPairSync('x25519');
  return {
    signKey: raw(s.publicKey),
    signSecret: raw(s.privateKey),
    boxKey: raw(b.publicKey),
    boxSecret: raw(b.privateKey),
  };
}

const ok = (crv: string, x: string) => createPublicKey({ key: { kty: 'OKP', crv, x }, format: 'jwk' });
const sk = (crv: string, x: string, d: string) =>
  createPrivateKey({ key: { kty: 'OKP', crv, x, d }, format: 'jwk' });

/** True if the text is a 32-byte key in base64url. */
export function isRawKey(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_-]{43}$/.test(value);
}

/** Short, comparable fingerprint of a user's public keys (shown and pinned by clients). */
export function fingerprint(id: PublicIdentity): string {
  const hex = sha256Hex(`sedfs-fp-v1\n${id.signKey}\n${id.boxKey}`).slice(0, 32);
  return hex.match(/.{4}/g)?.join(':') ?? hex;
}

export function signMessage(id: SecretIdentity, message: Uint8Array): string {
  return sign(null, message, sk('Ed25519', id.signKey, id.signSecret)).toString('base64url');
}

export function verifySignature(signKey: string, message: Uint8Array, signature: string): boolean {
  try {
    const sig = Buffer.from(signature, 'base64url');
    return sig.length === 64 && verify(null, message, ok('Ed25519', signKey), sig);
  } catch {
    return false;
  }
}

/**
 * Seals a small secret to a recipient's X25519 key: an ephemeral X25519 key agreement,
 * HKDF-SHA256 over the shared secret bound to both public keys and a context label,
 * then AES-256-GCM. Output: `ephemeral public key (32) ‖ nonce ‖ ciphertext ‖ tag`.
 */
export function sealTo(recipientBoxKey: string, plaintext: Uint8Array, context: string): Buffer {
  const eph = generateKeyPairSync('x25519');
  const ephPub = Buffer.from(raw(eph.publicKey), 'base64url');
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: ok('X25519', recipientBoxKey) });
  const key = deriveKey(
    shared,
    `sedfs-seal-v1\n${context}`,
    Buffer.concat([ephPub, Buffer.from(recipientBoxKey, 'base64url')]),
  );
  return Buffer.concat([ephPub, sealSymmetric(key, plaintext, Buffer.from(context, 'utf8'))]);
}

export function openSealed(id: SecretIdentity, sealed: Uint8Array, context: string): Buffer {
  if (sealed.length < 32) throw new SedfsError('SEDFS_ERR_DECRYPT', 'sealed key is too short');
  const ephPub = Buffer.from(sealed.subarray(0, 32));
  let shared: Buffer;
  try {
    shared = diffieHellman({
      privateKey: sk('X25519', id.boxKey, id.boxSecret),
      publicKey: ok('X25519', ephPub.toString('base64url')),
    });
  } catch {
    // A point of small order (32 zero bytes, from anyone who shares with anyone) has no
    // shared secret, and OpenSSL says so with an error of its own.
    throw new SedfsError('SEDFS_ERR_DECRYPT', 'sealed key does not open');
  }
  const key = deriveKey(
    shared,
    `sedfs-seal-v1\n${context}`,
    Buffer.concat([ephPub, Buffer.from(id.boxKey, 'base64url')]),
  );
  return openSymmetric(key, sealed.subarray(32), Buffer.from(context, 'utf8'), 'sealed key');
}

/** Random bytes for challenges and ids that leave the client. */
export function randomChallenge(): string {
  return randomBytes(32).toString('base64url');
}
