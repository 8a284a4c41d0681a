import { randomBytes, scryptSync } from 'node:crypto';
import { SedfsError } from '../protocol/errors.js';
import { openSymmetric, sealSymmetric } from './aead.js';

/**
 * Secrets at rest in the client profile: scrypt turns the passphrase into a key, then
 * AES-256-GCM. The parameters are stored beside the ciphertext so they can be raised
 * later without breaking old profiles. N = 2^15, r = 8 costs about 32 MiB and 0.1 s.
 */
export interface PassphraseBox {
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  /** nonce ‖ ciphertext ‖ tag, base64url */
  box: string;
}

const DEFAULTS = { N: 2 ** 15, r: 8, p: 1 };
const AAD = Buffer.from('sedfs-profile-v1', 'utf8');

function derive(passphrase: string, salt: Buffer, params: { N: number; r: number; p: number }): Buffer {
  return scryptSync(passphrase.normalize('NFC'), salt, 32, { ...params, maxmem: 256 * params.N * params.r });
}

export function lockWithPassphrase(passphrase: string, secret: Uint8Array, params = DEFAULTS): PassphraseBox {
  const salt = randomBytes(16);
  const key = derive(passphrase, salt, params);
  return {
    kdf: 'scrypt',
    ...params,
    salt: salt.toString('base64url'),
    box: sealSymmetric(key, secret, AAD).toString('base64url'),
  };
}

export function unlockWithPassphrase(passphrase: string, locked: PassphraseBox): Buffer {
  if (locked.kdf !== 'scrypt' || locked.N > 2 ** 20 || locked.r > 32 || locked.p > 16) {
    throw new SedfsError(
      'SEDFS_ERR_CONFIG',
      'the profile uses key-derivation settings this version does not accept',
    );
  }
  const key = derive(passphrase, Buffer.from(locked.salt, 'base64url'), locked);
  try {
    return openSymmetric(key, Buffer.from(locked.box, 'base64url'), AAD, 'profile');
  } catch {
    throw new SedfsError('SEDFS_ERR_BAD_PASSPHRASE');
  }
}
