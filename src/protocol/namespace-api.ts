import { type Static, Type } from '@sinclair/typebox';
import type { ErrorBody } from './errors.js';
import { CONTENTS_MAX, MAX_DATE_MS, REKEY_PART_MAX } from './limits.js';
import type { BlobManifest } from './main-api.js';
import { HexId, strict } from './schemas.js';

const Mac = Type.String({ pattern: '^[0-9a-f]{64}$' });
/** Encrypted names: a 255-byte name is about 380 characters once sealed and encoded. */
const NameEnc = Type.String({ pattern: '^[A-Za-z0-9_-]{1,1024}$' });
const Wrapped = Type.String({ pattern: '^[A-Za-z0-9_-]{1,256}$' });

/** A node as clients see it: everything secret in it is ciphertext or a MAC. */
export interface NodeEntry {
  id: string;
  kind: 'dir' | 'file';
  parentId: string | null;
  nameMac: string | null;
  nameEnc: string | null;
  wrappedKey: string | null;
  versionId: string | null;
  size: number;
  modifiedAt: number;
}

export interface ChildrenResponse {
  entries: NodeEntry[];
}

export const NodeParams = Type.Object({ id: HexId }, strict);
export const ChildParams = Type.Object({ id: HexId, mac: Mac }, strict);

/**
 * `expect…WrappedKey`: a node's wrapped key as the client saw it when it opened the key it
 * wraps or encrypts under. An unshare replaces every key in its subtree; anything wrapped
 * under a key that was replaced meanwhile would be unreadable, so main refuses it
 * (`SEDFS_ERR_VERSION_CONFLICT`) instead of keeping it.
 */
const ExpectWrappedKey = Type.Optional(Wrapped);

export const MkdirRequest = Type.Object(
  {
    id: HexId,
    nameMac: Mac,
    nameEnc: NameEnc,
    wrappedKey: Wrapped,
    expectParentWrappedKey: ExpectWrappedKey,
  },
  strict,
);
export type MkdirRequest = Static<typeof MkdirRequest>;

export const MoveRequest = Type.Object(
  {
    parentId: HexId,
    nameMac: Mac,
    nameEnc: NameEnc,
    wrappedKey: Wrapped,
    expectWrappedKey: ExpectWrappedKey,
    expectParentWrappedKey: ExpectWrappedKey,
  },
  strict,
);
export type MoveRequest = Static<typeof MoveRequest>;

export const DeleteQuery = Type.Object(
  { recursive: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])) },
  strict,
);

/** The namespace half of a commit: which file the blob becomes a version of. */
export const VersionCommit = Type.Object(
  {
    versionId: HexId,
    size: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    chunkBytes: Type.Integer({ minimum: 1, maximum: 256 * 1024 * 1024 }),
    contentKey: Wrapped,
    target: Type.Union([
      Type.Object(
        {
          nodeId: HexId,
          expectWrappedKey: ExpectWrappedKey,
          /** the version this one replaces: refused if another landed meanwhile (`write --append`) */
          expectVersionId: Type.Optional(Type.Union([HexId, Type.Null()])),
        },
        strict,
      ),
      Type.Object(
        {
          parentId: HexId,
          nodeId: HexId,
          nameMac: Mac,
          nameEnc: NameEnc,
          wrappedKey: Wrapped,
          expectParentWrappedKey: ExpectWrappedKey,
        },
        strict,
      ),
    ]),
  },
  strict,
);
export type VersionCommit = Static<typeof VersionCommit>;

export interface ContentResponse {
  node: NodeEntry;
  version: { id: string; size: number; chunkBytes: number; contentKey: string };
  /** the chunks from the one asked for (`from`, default 0), at most MANIFEST_PAGE of them */
  manifest: BlobManifest;
}

export const ContentQuery = Type.Object(
  { from: Type.Optional(Type.String({ pattern: '^(0|[1-9][0-9]{0,9})$' })) },
  strict,
);
export type ContentQuery = Static<typeof ContentQuery>;

/**
 * Chunks one such answer covers at most (each a signed read ticket): a file past it is
 * answered SEDFS_ERR_BATCH_FULL, to be asked for alone, so one request cannot make
 * main sign tickets for 256 large files in one go.
 */
export const CONTENTS_MAX_CHUNKS = 1024;
export const ContentsRequest = Type.Object(
  { ids: Type.Array(HexId, { minItems: 1, maxItems: CONTENTS_MAX, uniqueItems: true }) },
  strict,
);
export type ContentsRequest = Static<typeof ContentsRequest>;

/** One answer per id asked for, in the same order: its content, or why not. */
export interface ContentsResponse {
  contents: (ContentResponse | ({ id: string } & ErrorBody))[];
}

export type Access = 'owner' | 'write' | 'read';

/** An Ed25519 signature, base64url (64 bytes). */
const GrantSignature = Type.String({ pattern: '^[A-Za-z0-9_-]{86}$' });
/**
 * When the owner signed a grant, ms since 1970 (see grant-signature.ts), at most the
 * latest time a Date holds. Optional in the schema so that a client from before grants
 * were dated is told to upgrade, not that its request is malformed.
 */
const GrantSignedAt = Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_DATE_MS }));

export const ShareRequest = Type.Object(
  {
    grantee: HexId,
    perm: Type.Union([Type.Literal('read'), Type.Literal('write')]),
    sealedKey: Type.String({ pattern: '^[A-Za-z0-9_-]{1,512}$' }),
    sealedName: Type.String({ pattern: '^[A-Za-z0-9_-]{1,2048}$' }),
    /** the owner's Ed25519 signature over the grant (see grant-signature.ts) */
    signature: GrantSignature,
    signedAt: GrantSignedAt,
    /** the node's wrapped key when `sealedKey`'s key was opened: refused if an unshare replaced it */
    expectWrappedKey: ExpectWrappedKey,
  },
  strict,
);
export type ShareRequest = Static<typeof ShareRequest>;

/** A share as its recipient sees it under /shared/OWNER/NAME. */
export interface ShareEntry {
  nodeId: string;
  owner: string;
  kind: 'dir' | 'file';
  perm: 'read' | 'write';
  sealedKey: string;
  sealedName: string;
  /** the owner's signature over the grant; none on a grant made before grants were signed */
  signature?: string;
  /** when the owner signed it (in the signature); none on one signed before grants were dated */
  signedAt?: number;
}

export interface PermsResponse {
  owner: string;
  /** what the caller has here */
  you: Access;
  grants: { user: string; perm: 'read' | 'write'; from: string; inherited: boolean }[];
}

export interface SubtreeResponse {
  /** a page of the subtree in pre-order: a folder before what is in it */
  nodes: (NodeEntry & { contentKey: string | null })[];
  /**
   * the grants on those nodes, with each grantee's X25519 key for re-sealing and the
   * name sealed to them (kept by the rotation, signed again with the new sealed key)
   */
  grants: { nodeId: string; granteeId: string; boxKey: string; sealedName: string }[];
  /** set when the page is full: ask for the next one with `?after=` it */
  next?: string;
}

/**
 * Nodes one `GET /v1/nodes/:id/subtree` answers at most; an unshare asks for the rest a
 * page at a time (`?after=` the last node's id). One answer for a whole subtree kept
 * main's only thread on it and the client holding all of it (hundreds of thousands of
 * entries in a large folder). `limit` asks for fewer.
 */
export const SUBTREE_PAGE = 5000;
export const SubtreeQuery = Type.Object(
  {
    after: Type.Optional(HexId),
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,5}$' })),
  },
  strict,
);
export type SubtreeQuery = Static<typeof SubtreeQuery>;

/** Revokes a grant; the keys under the node are replaced afterwards (`RekeyRequest`). */
export const UnshareRequest = Type.Object({ grantee: HexId }, strict);
export type UnshareRequest = Static<typeof UnshareRequest>;

export interface UnshareResponse {
  /** the node whose subtree's keys are now to be replaced: this one, or a folder above it */
  rotation: string;
  /** what the user may still do to the node through a share of a folder above it */
  stillHas?: 'read' | 'write';
  /** the user's other shares inside the node: still in force (their keys are replaced too) */
  sharesInside: number;
}

export interface RotationsResponse {
  /**
   * key rotations in the caller's tree that an unshare began and nobody finished yet:
   * the attempt under way (null: none sent a part), how many parts it sent, and whether
   * main is installing its keys (its last part came and checked out: it ends by itself)
   */
  rotations: {
    nodeId: string;
    startedAt: number;
    attempt: string | null;
    parts: number;
    installing?: true;
  }[];
}

/** Bytes at most in one part of a rotation. */
export const REKEY_BODY_LIMIT = 16 * 1024 * 1024;

/**
 * One part of the new keys of a subtree whose rotation is pending. `attempt` is the
 * client's own random id for this try. Its first part names the attempt it takes the
 * rotation over from (`replacing`, as `GET /v1/rotations` showed it; null or left out:
 * none had begun), and drops what that one sent; if another attempt took over since,
 * the part is refused (SEDFS_ERR_REKEY_TAKEN_OVER), and so is every later part of an
 * attempt taken over: two clients finishing one rotation never mix their parts. The
 * last part (`done`) installs them all, in one transaction.
 */
export const RekeyRequest = Type.Object(
  {
    attempt: HexId,
    replacing: Type.Optional(Type.Union([HexId, Type.Null()])),
    done: Type.Boolean(),
    nodes: Type.Array(
      Type.Object(
        {
          id: HexId,
          wrappedKey: Wrapped,
          nameEnc: Type.Optional(NameEnc),
          nameMac: Type.Optional(Mac),
          contentKey: Type.Optional(Wrapped),
          /** the version whose content key `contentKey` re-wraps: refused if it is no longer current */
          versionId: Type.Optional(HexId),
          /** the node's wrapped key as read: refused if it was moved or renamed since */
          expectWrappedKey: ExpectWrappedKey,
        },
        strict,
      ),
      { maxItems: REKEY_PART_MAX },
    ),
    grants: Type.Array(
      Type.Object(
        {
          nodeId: HexId,
          granteeId: HexId,
          sealedKey: Type.String({ pattern: '^[A-Za-z0-9_-]{1,512}$' }),
          /** the node's name sealed afresh to the grantee (a client from before 2026-11-29's dated grants sent none: refused) */
          sealedName: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,2048}$' })),
          signature: GrantSignature,
          signedAt: GrantSignedAt,
        },
        strict,
      ),
      { maxItems: REKEY_PART_MAX },
    ),
  },
  strict,
);
export type RekeyRequest = Static<typeof RekeyRequest>;

export interface RekeyResponse {
  done: boolean;
  /** with `done`: how many nodes got new keys */
  nodes?: number;
}

export const LockRequest = Type.Object(
  { ttlSeconds: Type.Integer({ minimum: 1, maximum: 24 * 3600 }) },
  strict,
);
export interface LockResponse {
  holder: string;
  expiresAt: number;
  /** the caller held this lock already (a renewal keeps the later expiry) */
  renewed: boolean;
}

export interface UserKeysResponse {
  id: string;
  name: string;
  signKey: string;
  boxKey: string;
}
