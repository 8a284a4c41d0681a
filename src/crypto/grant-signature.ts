import { SedfsError } from '../protocol/errors.js';
import { MAX_DATE_MS } from '../protocol/limits.js';
import { type SecretIdentity, signMessage, verifySignature } from './identity.js';

/** A grant as its owner's client makes it: the node's key and name sealed to the grantee. */
export interface SealedGrant {
  nodeId: string;
  /** base64url, sealed to the grantee's X25519 key */
  sealedKey: string;
  /** base64url, sealed to the grantee's X25519 key */
  sealedName: string;
  /**
   * When the owner signed it (ms since 1970, by the owner's clock, later than the grant
   * it replaces): a grantee remembers the latest it has seen of each share and refuses
   * an earlier one, so main cannot hand back a grant an unshare's rotation replaced.
   * Absent on a grant signed before grants were dated (its statement is
   * `sedfs-grant-v1`), which counts as signed at 0.
   */
  signedAt?: number;
}

const NODE_ID = /^[0-9a-f]{32}$/;

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * True if every field is what a client makes: a node id, two base64url texts and a time.
 * Each is checked to be a string first: a regular expression tests what it is given as
 * text, and `undefined` reads as the well-formed "undefined".
 */
function wellFormed(g: SealedGrant): boolean {
  const text = (v: unknown, form: RegExp) => typeof v === 'string' && form.test(v);
  return (
    text(g.nodeId, NODE_ID) &&
    text(g.sealedKey, BASE64URL) &&
    text(g.sealedName, BASE64URL) &&
    (g.signedAt === undefined ||
      (Number.isInteger(g.signedAt) && g.signedAt > 0 && g.signedAt <= MAX_DATE_MS))
  );
}

/**
 * What an owner signs for a grant. Anyone who knows a user's public box key (main
 * included) can seal a key to it, so a grantee opens a share only if its owner's
 * Ed25519 key signed what it opens; the sealing already binds it to the grantee (its
 * key agreement is with their box key) and to the node (the seal's context names it).
 * Each field goes in with its length, and only well-formed fields are signed or
 * accepted: main chooses the node ids and names an unshare's rotation signs, and with
 * fields merely joined, an id holding the separator could have moved text from one
 * field into the next (a key of main's making signed as the owner's). Who may read or
 * write is main's to enforce either way, so the permission is not in it.
 */
function grantStatement(g: SealedGrant): Buffer {
  const fields =
    g.signedAt === undefined
      ? ['sedfs-grant-v1', g.nodeId, g.sealedKey, g.sealedName]
      : ['sedfs-grant-v2', g.nodeId, g.sealedKey, g.sealedName, String(g.signedAt)];
  const parts = fields.map((f) => Buffer.from(f, 'utf8'));
  return Buffer.concat(
    parts.flatMap((p) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(p.length);
      return [length, p];
    }),
  );
}

export function signGrant(owner: SecretIdentity, g: SealedGrant & { signedAt: number }): string {
  if (!wellFormed(g))
    throw new SedfsError(
      'SEDFS_ERR_BAD_ANSWER',
      'a grant to sign has a malformed node id, key, name or time',
    );
  return signMessage(owner, grantStatement(g));
}

/** True if `signature` is the owner's (by their Ed25519 public key) over this well-formed grant. */
export function grantSignedBy(ownerSignKey: string, g: SealedGrant, signature: string): boolean {
  return wellFormed(g) && verifySignature(ownerSignKey, grantStatement(g), signature);
}
