import { createHmac } from 'node:crypto';
import { deriveKey, openSymmetric, randomKey, sealSymmetric } from './aead.js';

/**
 * The namespace's keys. Every folder and file has a random 256-bit node key, wrapped
 * under its parent's; from a node key come purpose-bound subkeys (HKDF-SHA256):
 *
 * | subkey            | info label            | used for                                   |
 * | ----------------- | --------------------- | ------------------------------------------ |
 * | wrap key          | `sedfs-wrap-v1`       | wrapping children's node keys (AAD: child id) |
 * | name key          | `sedfs-name-v1`       | encrypting children's names (AAD: parent id)  |
 * | name MAC key      | `sedfs-name-mac-v1`   | HMAC-SHA256 of a child's name, for lookup     |
 * | content wrap key  | `sedfs-content-v1`    | wrapping a file version's content key (AAD: version id) |
 *
 * Names are normalised to Unicode NFC first, so the same name typed on macOS and Linux
 * finds the same node.
 */
export const newNodeKey = randomKey;

const wrapKey = (parentKey: Uint8Array) => deriveKey(parentKey, 'sedfs-wrap-v1');
const nameKey = (parentKey: Uint8Array) => deriveKey(parentKey, 'sedfs-name-v1');
const nameMacKey = (parentKey: Uint8Array) => deriveKey(parentKey, 'sedfs-name-mac-v1');
const contentWrapKey = (fileKey: Uint8Array) => deriveKey(fileKey, 'sedfs-content-v1');

const ascii = (s: string) => Buffer.from(s, 'utf8');

export function wrapNodeKey(parentKey: Uint8Array, childId: string, childKey: Uint8Array): string {
  return sealSymmetric(wrapKey(parentKey), childKey, ascii(`node:${childId}`)).toString('base64url');
}

export function unwrapNodeKey(parentKey: Uint8Array, childId: string, wrapped: string): Buffer {
  return openSymmetric(
    wrapKey(parentKey),
    Buffer.from(wrapped, 'base64url'),
    ascii(`node:${childId}`),
    'node key',
  );
}

export function encryptName(parentKey: Uint8Array, parentId: string, name: string): string {
  return sealSymmetric(nameKey(parentKey), ascii(name.normalize('NFC')), ascii(`name:${parentId}`)).toString(
    'base64url',
  );
}

export function decryptName(parentKey: Uint8Array, parentId: string, sealed: string): string {
  return openSymmetric(
    nameKey(parentKey),
    Buffer.from(sealed, 'base64url'),
    ascii(`name:${parentId}`),
    'name',
  ).toString('utf8');
}

/** Keyed MAC of a name: main enforces unique names and finds children without learning them. */
export function nameMac(parentKey: Uint8Array, name: string): string {
  return createHmac('sha256', nameMacKey(parentKey)).update(name.normalize('NFC'), 'utf8').digest('hex');
}

export function wrapContentKey(fileKey: Uint8Array, versionId: string, contentKey: Uint8Array): string {
  return sealSymmetric(contentWrapKey(fileKey), contentKey, ascii(`content:${versionId}`)).toString(
    'base64url',
  );
}

export function unwrapContentKey(fileKey: Uint8Array, versionId: string, wrapped: string): Buffer {
  return openSymmetric(
    contentWrapKey(fileKey),
    Buffer.from(wrapped, 'base64url'),
    ascii(`content:${versionId}`),
    'content key',
  );
}
