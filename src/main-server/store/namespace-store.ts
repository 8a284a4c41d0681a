/**
 * Users, sessions and the encrypted namespace, as main keeps them. Main sees ids,
 * tree shape, sizes and times; names and keys only as ciphertext and MACs.
 */
export interface UserRecord {
  id: string;
  name: string;
  signKey: string;
  boxKey: string;
  admin: boolean;
  /** the user's home folder */
  rootId: string;
  /** the home folder's node key, sealed to the user's own X25519 key */
  rootSealed: string;
  createdAt: number;
}

export type NodeKind = 'dir' | 'file';

export interface NodeRecord {
  id: string;
  ownerId: string;
  /** null for a home folder */
  parentId: string | null;
  kind: NodeKind;
  /** keyed MAC of the name under the parent's key; null for a home folder */
  nameMac: string | null;
  /** the name, encrypted under the parent's key */
  nameEnc: string | null;
  /** this node's key wrapped under the parent's; null for a home folder (sealed on the user) */
  wrappedKey: string | null;
  /** current version of a file; null for folders and for a file being created */
  versionId: string | null;
  size: number;
  createdAt: number;
  modifiedAt: number;
}

export interface VersionRecord {
  id: string;
  nodeId: string;
  blobId: string;
  /** plaintext size */
  size: number;
  chunkBytes: number;
  /** content key wrapped under the file's node key */
  contentKey: string;
  createdAt: number;
}

/** A new file, or a new version of an existing one, to commit with its blob. */
export type VersionTarget = { kind: 'existing'; nodeId: string } | { kind: 'new'; node: NodeRecord };

export type Perm = 'read' | 'write';

/** A node shared with a user: its key and name sealed to the grantee's X25519 key. */
export interface GrantRecord {
  nodeId: string;
  granteeId: string;
  perm: Perm;
  sealedKey: string;
  sealedName: string;
  /** the owner's signature over the grant; null on one made before grants were signed */
  signature: string | null;
  /** when the owner signed it, in the signature; null on one signed before grants were dated */
  signedAt: number | null;
  grantedAt: number;
}

export interface LockRecord {
  nodeId: string;
  holderId: string;
  expiresAt: number;
}

/** A node in a subtree being re-keyed, with its current version's wrapped content key. */
export interface SubtreeNode extends NodeRecord {
  contentKey: string | null;
}

/** A key rotation not finished yet, and the attempt at it under way. */
export interface PendingRotation {
  rootId: string;
  startedAt: number;
  /** the attempt whose parts are kept; null until one sends a part */
  attempt: string | null;
  /** how many parts that attempt sent */
  parts: number;
  /** its keys are being installed (see installStep) */
  installing: boolean;
}

export interface SubtreePage {
  nodes: SubtreeNode[];
  /** the grants on those nodes */
  grants: GrantRecord[];
  /** the last node's id, when the page is full: the next page begins after it */
  next?: string;
}

/**
 * A node's new keys in a key rotation: its key wrapped under its parent's new key (the
 * root's under its parent's unchanged one), its name sealed again under the parent's
 * new key (not for the root, whose parent's key does not change), and its current
 * version's content key wrapped under its own new key.
 */
export interface RekeyNode {
  id: string;
  wrappedKey: string;
  nameEnc?: string;
  nameMac?: string;
  contentKey?: string;
  /** the version whose content key `contentKey` re-wraps (it must still be current) */
  versionId?: string;
  /** its wrapped key when the client read it: a node moved or renamed since is refused */
  expectWrappedKey?: string;
}

/** A remaining grant's node key, sealed again to its grantee. */
export interface RekeyGrant {
  nodeId: string;
  granteeId: string;
  sealedKey: string;
  /** the node's name sealed afresh; absent only from a part staged before 2026-11-29's dated grants (the old one is kept) */
  sealedName?: string | undefined;
  /** the owner's signature over the new sealed key, the sealed name (new, or else kept) and `signedAt` */
  signature: string;
  /** when the owner signed it; absent from a client before grants were dated */
  signedAt?: number | undefined;
}

export interface NamespaceStore {
  countUsers(): number;
  /** Runs `fn` in one transaction (nested ones become savepoints): all of it lands, or none. */
  atomically<T>(fn: () => T): T;
  /**
   * The user and their home folder, in one transaction; with `inviteHash`, the invite
   * is used in the same transaction, or SEDFS_ERR_INVITE_REQUIRED and nothing is kept.
   */
  createUser(user: UserRecord, home: NodeRecord, inviteHash?: string): void;
  userByName(name: string): UserRecord | undefined;
  userById(id: string): UserRecord | undefined;

  createInvite(codeHash: string, createdBy: string, now: number, expiresAt: number): void;
  /** Marks the invite used; false if unknown, used or expired. */
  useInvite(codeHash: string, userId: string, now: number): boolean;

  createSession(tokenHash: string, userId: string, now: number, expiresAt: number): void;
  sessionUser(tokenHash: string, now: number): UserRecord | undefined;
  deleteSession(tokenHash: string): void;

  getNode(id: string): NodeRecord | undefined;
  children(parentId: string): NodeRecord[];
  childByMac(parentId: string, nameMac: string): NodeRecord | undefined;
  /** Throws SEDFS_ERR_EXISTS if the parent already has a child with that name MAC. */
  createNode(node: NodeRecord): void;
  getVersion(id: string): VersionRecord | undefined;
  /**
   * Makes a version current and frees the one it replaces, in one transaction with
   * the blob commit `commitBlob` performs (passed in so both stores share it).
   */
  commitVersion(target: VersionTarget, version: VersionRecord, commitBlob: () => void): void;
  /** Re-parents and/or renames a node; throws SEDFS_ERR_EXISTS on a name clash. */
  moveNode(
    id: string,
    parentId: string,
    nameMac: string,
    nameEnc: string,
    wrappedKey: string,
    now: number,
  ): void;
  /** Deletes a node (and its subtree); its versions' chunks are queued for deletion. */
  deleteNode(id: string, now: number): void;
  /** True if `ancestorId` is `id` or one of its ancestors. */
  isAncestor(ancestorId: string, id: string): boolean;

  /** Grants to `granteeId` on the node or any ancestor, nearest first. */
  grantsOnPath(nodeId: string, granteeId: string): (GrantRecord & { depth: number })[];
  /** Every grant on the node or any ancestor, nearest first (for `perms`). */
  grantsAbove(nodeId: string): (GrantRecord & { depth: number })[];
  grantsTo(granteeId: string): GrantRecord[];
  putGrant(grant: GrantRecord): void;
  /**
   * A page of the nodes under (and including) `rootId`, in pre-order (a folder before
   * what is in it, each folder's children in name-MAC order), from the one after `after`
   * (the root first if undefined), at most `limit`; with their grants.
   */
  subtreePage(rootId: string, after: string | undefined, limit: number): SubtreePage;
  /**
   * Deletes the grant and records, in the same transaction, that every key under
   * `rootId` is to be replaced. Returns the root of the key rotation that now covers
   * `rootId`: itself, or a folder above it whose rotation is still pending (one pending
   * below it becomes part of this one). Undefined, and nothing changed, if there was no
   * such grant.
   */
  revoke(rootId: string, granteeId: string, now: number): string | undefined;
  /** The root of a pending key rotation on the node or a folder above it, if any. */
  rotationOnPath(nodeId: string): string | undefined;
  /** The pending key rotations in the user's tree, oldest first, with the attempt under way. */
  rotationsOf(ownerId: string): PendingRotation[];
  /**
   * Keeps one part of a rotation's new keys until its last part. A part of another
   * `attempt` than the one kept so far takes the rotation over, dropping what that one
   * sent, only if it names it (`replacing`; null: none had begun): otherwise
   * SEDFS_ERR_REKEY_TAKEN_OVER, and nothing changes. Throws SEDFS_ERR_NOT_FOUND if no
   * rotation is pending at `rootId`.
   */
  stageRekey(
    rootId: string,
    attempt: string,
    nodes: RekeyNode[],
    grants: RekeyGrant[],
    replacing?: string | null,
  ): void;
  /**
   * Checks the new keys the attempt's parts carried and, if they hold, marks the rotation
   * as installing (see installStep); returns how many nodes get new keys. Throws
   * SEDFS_ERR_VERSION_CONFLICT, keeping everything as it was, unless they are exactly the
   * subtree's nodes (each as the client read it) and its remaining grants;
   * SEDFS_ERR_EXISTS if two new names in a folder, or a new one and a name there, are alike.
   */
  beginInstall(rootId: string, attempt: string): number;
  /**
   * Installs the next `limit` nodes' new keys (by id) of a rotation begun with
   * beginInstall, and their versions' and grants' keys, in one transaction; the step
   * after the last ends the rotation. True once it has ended (or is gone).
   */
  installStep(rootId: string, limit: number, now: number): boolean;
  /** Rotations being installed (a main that stopped half-way goes on with them), oldest first. */
  installingRotations(): string[];
  /** beginInstall and every step, in one transaction: returns how many nodes got new keys. */
  applyRekey(rootId: string, attempt: string, now: number): number;
  /**
   * Drops what `attempt` sent so far, if it is still the attempt under way: the rotation
   * stays pending with none under way, so the next attempt begins at once rather than
   * waiting for this one to stall (a part main refused ends its attempt).
   */
  dropAttempt(rootId: string, attempt: string): void;

  /** Unexpired locks on the node or any ancestor. */
  locksOnPath(nodeId: string, now: number): LockRecord[];
  /** An unexpired lock someone other than `userId` holds on a node below `nodeId`, if any. */
  lockBelow(nodeId: string, userId: string, now: number): LockRecord | undefined;
  /** The unexpired locks `holderId` holds on `nodeId` or anything below it. */
  locksHeldIn(nodeId: string, holderId: string, now: number): LockRecord[];
  /** Takes or renews a lock; locks expired by `now` are dropped at the same time, so stale ones never pile up. */
  setLock(lock: LockRecord, now: number): void;
  deleteLock(nodeId: string): void;
}
