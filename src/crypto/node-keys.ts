import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
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

/**
 * Subkeys of the node keys in use, as key objects. Listing a folder opens every child's
 * name and key under the same parent's subkeys: one HKDF per parent, not two per child
 * (10,000 entries spent ~0.1 s deriving the same two keys). They are found by the key's
 * buffer, not its bytes spelled out (three base64 strings an entry), and kept as long as
 * that buffer lives; the bytes they were derived from are kept beside them and compared,
 * so a buffer written over since gets subkeys of its own. Only this process's memory
 * holds them, as it holds the node keys themselves.
 */
const derived = new WeakMap<Uint8Array, { from: Buffer; subkeys: Map<string, KeyObject> }>();

function subkey(key: Uint8Array, label: string): KeyObject {
  let held = derived.get(key);
  if (!held?.from.equals(key)) {
    held = { from: Buffer.from(key), subkeys: new Map() };
    derived.set(key, held);
  }
  let k = held.subkeys.get(label);
  if (!k) {
    k = createSecretKey(deriveKey(held.from, label));
    held.subkeys.set(label, k);
  }
  return k;
}

const wrapKey = (parentKey: Uint8Array) => subkey(parentKey, 'sedfs-wrap-v1');
const nameKey = (parentKey: Uint8Array) => subkey(parentKey, 'sedfs-name-v1');
const nameMacKey = (parentKey: Uint8Array) => subkey(parentKey, 'sedfs-name-mac-v1');
const contentWrapKey = (fileKey: Uint8Array) => subkey(fileKey, 'sedfs-content-v1');

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

/**
 * A node's name, sealed under its parent's key and bound to both ids: main cannot move a
 * name onto another node (swap two siblings' names) or into another folder.
 */
export function encryptName(parentKey: Uint8Array, parentId: string, nodeId: string, name: string): string {
  return sealSymmetric(
    nameKey(parentKey),
    ascii(name.normalize('NFC')),
    ascii(`name:${parentId}:${nodeId}`),
  ).toString('base64url');
}

/**
 * Opens a name sealed by `encryptName`, or one sealed before names were bound to their
 * node (AAD `name:<parent id>`, clients before 2026-11-27), so trees written then still
 * open. Those stay swappable between siblings by main until they are written again
 * (a rename, a move, or the re-key of an unshare seals them in the bound form).
 */
export function decryptName(parentKey: Uint8Array, parentId: string, nodeId: string, sealed: string): string {
  const key = nameKey(parentKey);
  const bytes = Buffer.from(sealed, 'base64url');
  try {
    return openSymmetric(key, bytes, ascii(`name:${parentId}:${nodeId}`), 'name').toString('utf8');
  } catch (err) {
    try {
      return openSymmetric(key, bytes, ascii(`name:${parentId}`), 'name').toString('utf8');
    } catch {
      throw err;
    }
  }
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
