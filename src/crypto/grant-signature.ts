import { type SecretIdentity, signMessage, verifySignature } from './identity.js';

/** A grant as its owner's client makes it: the node's key and name sealed to the grantee. */
export interface SealedGrant {
  nodeId: string;
  /** base64url, sealed to the grantee's X25519 key */
  sealedKey: string;
  /** base64url, sealed to the grantee's X25519 key */
  sealedName: string;
}

/**
 * What an owner signs for a grant. Anyone who knows a user's public box key (main
 * included) can seal a key to it, so a grantee opens a share only if its owner's
 * Ed25519 key signed what it opens; the sealing already binds it to the grantee (its
 * key agreement is with their box key) and to the node (the seal's context names it).
 * Who may read or write is main's to enforce either way, so the permission is not in it.
 */
function grantStatement(g: SealedGrant): Buffer {
  return Buffer.from(`sedfs-grant-v1\n${g.nodeId}\n${g.sealedKey}\n${g.sealedName}`, 'utf8');
}

export function signGrant(owner: SecretIdentity, g: SealedGrant): string {
  return signMessage(owner, grantStatement(g));
}

/** True if `signature` is the owner's (by their Ed25519 public key) over this grant. */
export function grantSignedBy(ownerSignKey: string, g: SealedGrant, signature: string): boolean {
  return verifySignature(ownerSignKey, grantStatement(g), signature);
}
