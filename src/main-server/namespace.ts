import { atMostOnceAMinute, type Logger } from '../common/logger.js';
import { retryWithBackoff } from '../common/retry.js';
import { grantSignedBy } from '../crypto/grant-signature.js';
import { SedfsError } from '../protocol/errors.js';
import { GRANT_DATE_AHEAD_MS } from '../protocol/limits.js';
import type {
  Access,
  ContentResponse,
  LockResponse,
  MkdirRequest,
  MoveRequest,
  NodeEntry,
  PermsResponse,
  RekeyRequest,
  RekeyResponse,
  RotationsResponse,
  ShareEntry,
  ShareRequest,
  SubtreeResponse,
  UnshareRequest,
  UnshareResponse,
  VersionCommit,
} from '../protocol/namespace-api.js';
import type { AuditLog } from './audit.js';
import type { BlobService, PreparedBlob } from './blob-service.js';
import type { NamespaceStore, NodeRecord, UserRecord, VersionTarget } from './store/namespace-store.js';

export function toEntry(n: NodeRecord): NodeEntry {
  return {
    id: n.id,
    kind: n.kind,
    parentId: n.parentId,
    nameMac: n.nameMac,
    nameEnc: n.nameEnc,
    wrappedKey: n.wrappedKey,
    versionId: n.versionId,
    size: n.size,
    modifiedAt: n.modifiedAt,
  };
}

const RANK: Record<Access, number> = { read: 1, write: 2, owner: 3 };

/**
 * Nodes whose new keys one step of an install writes (see NamespaceService.install): a
 * step of this many holds main's thread ~25 ms (bench/probes/subtree-pages.mjs).
 */
const INSTALL_STEP_NODES = 2000;

/** How a rotation's keys are installed: tests take small steps, and act between them. */
export interface InstallOptions {
  stepNodes?: number;
  /** awaited between two steps (the event loop's turn, unless told) */
  betweenSteps?: () => Promise<void>;
}

/**
 * The encrypted namespace: folders and files as nodes. Every operation checks the
 * caller's access on the node: the owner has all of it; a grant on the node or any
 * folder above it gives read or write. A node the caller cannot reach at all gets the
 * same 404 as one that does not exist, so ids cannot be probed; a node they can see
 * but not change gets 403. Names arrive encrypted, with a MAC for uniqueness.
 */
export class NamespaceService {
  /** Rotations whose keys are being installed, by root: requests under them wait (see authorize). */
  private readonly installs = new Map<string, Promise<void>>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly store: NamespaceStore,
    private readonly blobs: BlobService,
    private readonly log: Logger,
    private readonly audit: AuditLog,
    private readonly now: () => number,
    /** Called when chunks were freed, so their deletion starts soon. */
    private readonly onFreed: () => void,
    private readonly installing: InstallOptions = {},
  ) {
    // A main that stopped half-way through installing goes on where it stopped.
    for (const root of store.installingRotations()) void this.install(root);
  }

  /** What the user may do with the node: owner, write, read, or nothing. */
  access(user: UserRecord, node: NodeRecord): Access | undefined {
    if (node.ownerId === user.id) return 'owner';
    const grants = this.store.grantsOnPath(node.id, user.id);
    if (grants.length === 0) return undefined;
    return grants.some((g) => g.perm === 'write') ? 'write' : 'read';
  }

  /** The node, if the user has at least `need` on it; otherwise 404 (no access) or 403. */
  authorize(user: UserRecord, id: string, need: Access, op: string, evenInstalling = false): NodeRecord {
    const node = this.store.getNode(id);
    const has = node ? this.access(user, node) : undefined;
    if (!node || !has) {
      this.audit.write({ event: 'denied', user: user.id, node: id, op });
      throw new SedfsError('SEDFS_ERR_NOT_FOUND');
    }
    if (RANK[has] < RANK[need]) {
      this.audit.write({ event: 'denied', user: user.id, node: id, op, perm: has });
      throw new SedfsError(
        'SEDFS_ERR_FORBIDDEN',
        need === 'owner' ? 'only the owner may do that' : 'you have read-only access here',
      );
    }
    if (!evenInstalling) this.notInstalling(id);
    return node;
  }

  /**
   * Refuses (503 SEDFS_ERR_KEYS_INSTALLING; the client tries again) a request for a node
   * under a rotation whose keys are being installed: half-way, some keys are wrapped
   * under new ones and others under old, and neither a reader nor a writer could make
   * sense of the folder. Asked of those who may see the node only: to anyone else it is
   * not there, as before.
   */
  private notInstalling(id: string): void {
    // Rotations do not nest (revoke takes one below into a new one, and refuses while one
    // is installed): the one on the path is the one to ask about. Nothing is asked while
    // nothing is installed.
    if (this.installs.size === 0) return;
    const root = this.store.rotationOnPath(id);
    if (root && this.installs.has(root)) throw new SedfsError('SEDFS_ERR_KEYS_INSTALLING');
  }

  node(user: UserRecord, id: string): NodeRecord {
    return this.authorize(user, id, 'read', 'stat');
  }

  private folder(user: UserRecord, id: string, need: Access, op: string): NodeRecord {
    const node = this.authorize(user, id, need, op);
    if (node.kind !== 'dir') throw new SedfsError('SEDFS_ERR_NOT_A_FOLDER');
    return node;
  }

  /** Refuses a change under a lock someone else holds: `locked by alice until …`. */
  private unlocked(user: UserRecord, nodeId: string): void {
    const lock = this.store.locksOnPath(nodeId, this.now()).find((l) => l.holderId !== user.id);
    if (!lock) return;
    const holder = this.store.userById(lock.holderId)?.name ?? 'another user';
    throw new SedfsError(
      'SEDFS_ERR_LOCKED',
      `locked by ${holder} until ${new Date(lock.expiresAt).toISOString()}`,
    );
  }

  /**
   * Refuses to delete or move a folder when something inside it is locked by someone
   * else: the lock would go with it (deleted), or its holder's path would change under them.
   */
  private nothingLockedInside(user: UserRecord, node: NodeRecord): void {
    if (node.kind !== 'dir') return;
    const lock = this.store.lockBelow(node.id, user.id, this.now());
    if (!lock) return;
    const holder = this.store.userById(lock.holderId)?.name ?? 'another user';
    throw new SedfsError(
      'SEDFS_ERR_LOCKED',
      `something inside is locked by ${holder} until ${new Date(lock.expiresAt).toISOString()}`,
    );
  }

  children(user: UserRecord, id: string): NodeEntry[] {
    this.folder(user, id, 'read', 'ls');
    return this.store.children(id).map(toEntry);
  }

  lookup(user: UserRecord, parentId: string, nameMac: string): NodeEntry {
    this.folder(user, parentId, 'read', 'lookup');
    const child = this.store.childByMac(parentId, nameMac);
    if (!child) throw new SedfsError('SEDFS_ERR_NOT_FOUND');
    return toEntry(child);
  }

  mkdir(user: UserRecord, parentId: string, req: MkdirRequest): NodeEntry {
    const parent = this.folder(user, parentId, 'write', 'mkdir');
    keysUnchanged(parent, req.expectParentWrappedKey);
    this.unlocked(user, parentId);
    this.notRekeying(parentId);
    const now = this.now();
    const node: NodeRecord = {
      id: req.id,
      // What a writer makes in a shared folder belongs to the folder's owner, with the rest of the tree.
      ownerId: parent.ownerId,
      parentId,
      kind: 'dir',
      nameMac: req.nameMac,
      nameEnc: req.nameEnc,
      wrappedKey: req.wrappedKey,
      versionId: null,
      size: 0,
      createdAt: now,
      modifiedAt: now,
    };
    this.store.createNode(node);
    return toEntry(node);
  }

  move(user: UserRecord, id: string, req: MoveRequest): void {
    const node = this.node(user, id);
    if (node.parentId === null)
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'the home folder cannot be moved');
    this.folder(user, node.parentId, 'write', 'mv');
    const dest = this.folder(user, req.parentId, 'write', 'mv');
    if (dest.ownerId !== node.ownerId) {
      throw new SedfsError(
        'SEDFS_ERR_FORBIDDEN',
        "moving between different owners' files is not possible: copy instead",
      );
    }
    if (this.store.isAncestor(id, req.parentId)) throw new SedfsError('SEDFS_ERR_MOVE_INTO_ITSELF');
    keysUnchanged(node, req.expectWrappedKey);
    keysUnchanged(dest, req.expectParentWrappedKey);
    this.unlocked(user, id);
    this.nothingLockedInside(user, node);
    this.unlocked(user, req.parentId);
    this.notRekeying(id);
    this.notRekeying(req.parentId);
    this.store.moveNode(id, req.parentId, req.nameMac, req.nameEnc, req.wrappedKey, this.now());
  }

  remove(user: UserRecord, id: string, recursive: boolean): void {
    // The root of a rotation being installed may go, with all of it (its install ends):
    // the way out of one whose steps keep failing.
    const node = this.authorize(user, id, 'read', 'stat', this.installs.has(id));
    if (node.parentId === null)
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'the home folder cannot be removed');
    // Removing takes a name out of its folder: that needs write on the folder.
    this.folder(user, node.parentId, 'write', 'rm');
    this.unlocked(user, id);
    this.notRekeying(id, true);
    if (node.kind === 'dir' && !recursive && this.store.children(id).length > 0) {
      throw new SedfsError('SEDFS_ERR_NOT_EMPTY');
    }
    this.nothingLockedInside(user, node);
    this.store.deleteNode(id, this.now());
    this.onFreed();
  }

  /**
   * A file's current content, its manifest from chunk `from` (`count` chunks at most);
   * `maxChunks`: refuse (SEDFS_ERR_BATCH_FULL) a file with more.
   */
  content(
    user: UserRecord,
    id: string,
    opts: { from?: number; count?: number; maxChunks?: number } = {},
  ): ContentResponse {
    const node = this.authorize(user, id, 'read', 'get');
    if (node.kind !== 'file') throw new SedfsError('SEDFS_ERR_IS_A_FOLDER');
    const version = node.versionId ? this.store.getVersion(node.versionId) : undefined;
    if (!version) throw new SedfsError('SEDFS_ERR_NOT_FOUND', 'the file has no committed content');
    return {
      node: toEntry(node),
      version: {
        id: version.id,
        size: version.size,
        chunkBytes: version.chunkBytes,
        contentKey: version.contentKey,
      },
      manifest: this.blobs.manifest(version.blobId, opts),
    };
  }

  /** Commits an upload as a new file or a new version of one, atomically with its blob. */
  commitVersion(user: UserRecord, v: VersionCommit, blob: PreparedBlob): NodeEntry {
    const nodeId = this.applyVersion(user, v, blob);
    blob.logCommitted('info');
    this.log.info({ user: user.id, node: nodeId, version: v.versionId, size: v.size }, 'version committed');
    this.onFreed();
    return toEntry(this.store.getNode(nodeId) as NodeRecord);
  }

  /** Checks and writes one version (inside the caller's transaction); returns its node's id. */
  private applyVersion(user: UserRecord, v: VersionCommit, blob: PreparedBlob): string {
    const now = this.now();
    let target: VersionTarget;
    if ('parentId' in v.target) {
      const parent = this.folder(user, v.target.parentId, 'write', 'put');
      keysUnchanged(parent, v.target.expectParentWrappedKey);
      this.unlocked(user, parent.id);
      this.notRekeying(parent.id);
      target = {
        kind: 'new',
        node: {
          id: v.target.nodeId,
          ownerId: parent.ownerId,
          parentId: v.target.parentId,
          kind: 'file',
          nameMac: v.target.nameMac,
          nameEnc: v.target.nameEnc,
          wrappedKey: v.target.wrappedKey,
          versionId: null,
          size: 0,
          createdAt: now,
          modifiedAt: now,
        },
      };
    } else {
      const node = this.authorize(user, v.target.nodeId, 'write', 'put');
      if (node.kind !== 'file') throw new SedfsError('SEDFS_ERR_IS_A_FOLDER');
      keysUnchanged(node, v.target.expectWrappedKey);
      if (v.target.expectVersionId !== undefined && node.versionId !== v.target.expectVersionId)
        throw new SedfsError(
          'SEDFS_ERR_VERSION_CONFLICT',
          'the file got a new version since it was read; read it again and retry',
        );
      this.unlocked(user, node.id);
      this.notRekeying(node.id);
      target = { kind: 'existing', nodeId: node.id };
    }
    const nodeId = target.kind === 'new' ? target.node.id : target.nodeId;
    if (this.store.getVersion(v.versionId))
      throw new SedfsError('SEDFS_ERR_EXISTS', 'that version id is already in use');
    this.store.commitVersion(
      target,
      {
        id: v.versionId,
        nodeId,
        blobId: blob.response.blobId,
        size: v.size,
        chunkBytes: v.chunkBytes,
        contentKey: v.contentKey,
        createdAt: now,
      },
      blob.store,
    );
    return nodeId;
  }

  /**
   * Commits many uploads' blobs as files or versions in one transaction (`put -r` of
   * small files): one commit, one fsync, for all of them; any failure keeps none.
   */
  commitVersions(user: UserRecord, items: { version: VersionCommit; blob: PreparedBlob }[]): NodeEntry[] {
    const nodeIds = this.store.atomically(() => items.map((i) => this.applyVersion(user, i.version, i.blob)));
    // Logged once the transaction holds: one line for the batch, each file's at debug
    // (two info lines per file were most of main's log and a tenth of its work here).
    items.forEach((i, k) => {
      i.blob.logCommitted('debug');
      this.log.debug(
        { user: user.id, node: nodeIds[k], version: i.version.versionId, size: i.version.size },
        'version committed',
      );
    });
    const bytes = items.reduce((n, i) => n + i.version.size, 0);
    this.log.info({ user: user.id, files: items.length, bytes }, 'versions committed in one batch');
    this.onFreed();
    return nodeIds.map((id) => toEntry(this.store.getNode(id) as NodeRecord));
  }

  /** Grants `perm` on a node the caller owns; the key and name come sealed to the grantee. */
  share(user: UserRecord, id: string, req: ShareRequest): void {
    const node = this.authorize(user, id, 'owner', 'share');
    keysUnchanged(node, req.expectWrappedKey);
    if (node.parentId === null)
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'share a folder inside your home, not the home itself');
    const grantee = this.store.userById(req.grantee);
    if (!grantee || grantee.id === user.id)
      throw new SedfsError('SEDFS_ERR_NOT_FOUND', 'no such user to share with');
    this.notRekeying(id);
    // The grantee checks it anyway (main is not trusted with that); checked here too so a
    // grant its grantee would leave out is refused when it is made, with a reason.
    const grant = {
      nodeId: id,
      sealedKey: req.sealedKey,
      sealedName: req.sealedName,
      signedAt: datedGrant(req),
    };
    if (!grantSignedBy(user.signKey, grant, req.signature))
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'the grant is not signed with your key');
    notBefore(
      { signedAt: grant.signedAt, signature: req.signature },
      this.store.grantsOnPath(id, grantee.id).find((k) => k.depth === 0),
    );
    this.store.atomically(() => {
      this.store.putGrant({
        ...grant,
        granteeId: grantee.id,
        perm: req.perm,
        signature: req.signature,
        signedAt: grant.signedAt,
        grantedAt: this.now(),
      });
      // Shared again to read only: their locks would go on refusing everyone's changes,
      // and they could no longer renew or release them.
      if (req.perm === 'read') this.releaseRevokedLocks(user, id, grantee.id, 'share');
      this.audit.write({ event: 'share', user: user.id, node: id, target: grantee.id, perm: req.perm });
    });
  }

  /** What others shared with the caller, for the /shared view. */
  shares(user: UserRecord): ShareEntry[] {
    const grants = this.store.grantsTo(user.id);
    // A grant's key is replaced with the rest of its rotation's (see notInstalling).
    for (const g of grants) this.notInstalling(g.nodeId);
    return grants.flatMap((g) => {
      const node = this.store.getNode(g.nodeId);
      const owner = node && this.store.userById(node.ownerId);
      if (!node || !owner) return [];
      return [
        {
          nodeId: g.nodeId,
          owner: owner.name,
          kind: node.kind,
          perm: g.perm,
          sealedKey: g.sealedKey,
          sealedName: g.sealedName,
          ...(g.signature ? { signature: g.signature } : {}),
          ...(g.signedAt ? { signedAt: g.signedAt } : {}),
        },
      ];
    });
  }

  perms(user: UserRecord, id: string): PermsResponse {
    const node = this.authorize(user, id, 'read', 'perms');
    const name = (uid: string) => this.store.userById(uid)?.name ?? uid;
    return {
      owner: name(node.ownerId),
      you: this.access(user, node) as Access,
      grants: this.store.grantsAbove(id).map((g) => ({
        user: name(g.granteeId),
        perm: g.perm,
        from: g.nodeId,
        inherited: g.depth > 0,
      })),
    };
  }

  /** A page of everything under a node the caller owns, with the keys an unshare must replace. */
  subtree(user: UserRecord, id: string, page: { after: string | undefined; limit: number }): SubtreeResponse {
    this.authorize(user, id, 'owner', 'unshare');
    const { nodes, grants, next } = this.store.subtreePage(id, page.after, page.limit);
    return {
      nodes: nodes.map((n) => ({ ...toEntry(n), contentKey: n.contentKey })),
      grants: grants.map((g) => ({
        nodeId: g.nodeId,
        granteeId: g.granteeId,
        boxKey: this.store.userById(g.granteeId)?.boxKey ?? '',
        sealedName: g.sealedName,
      })),
      ...(next ? { next } : {}),
    };
  }

  /**
   * Revokes a grant: main refuses the revoked user from the moment this returns. In the
   * same transaction it records that every key under the node is to be replaced (see
   * `rekey`) and releases the locks the revoked user held where they can no longer
   * write: kept, they would go on refusing the owner's and the other writers' changes
   * until they expired, from someone who has no access any more. Returns the root of
   * the key rotation now pending: the node, or a folder above it whose rotation is
   * still pending. Nothing the revoked user does can undo or hold this up: it takes no
   * body to speak of, and checks nothing they could have changed.
   */
  unshare(user: UserRecord, id: string, req: UnshareRequest): UnshareResponse {
    this.authorize(user, id, 'owner', 'unshare');
    const rotation = this.store.atomically(() => {
      const root = this.store.revoke(id, req.grantee, this.now());
      if (!root) throw new SedfsError('SEDFS_ERR_NOT_FOUND', 'that user has no grant on this node');
      this.releaseRevokedLocks(user, id, req.grantee, 'unshare');
      // Last in the transaction: an audit line that cannot be written (a full disk) undoes
      // the unshare, rather than failing a request whose change was already made.
      this.audit.write({ event: 'unshare', user: user.id, node: id, target: req.grantee });
      return root;
    });
    this.log.info({ user: user.id, node: id, rotation }, 'unshared; its keys are to be replaced');
    // Other shares the user holds stay in force: the owner is told, rather than left to
    // believe the user has no access here any more.
    const grantee = this.store.userById(req.grantee);
    const node = this.store.getNode(id);
    const left = grantee && node ? this.access(grantee, node) : undefined;
    const sharesInside = this.store
      .grantsTo(req.grantee)
      .filter((g) => g.nodeId !== id && this.store.isAncestor(id, g.nodeId)).length;
    return {
      rotation,
      ...(left === 'read' || left === 'write' ? { stillHas: left } : {}),
      sharesInside,
    };
  }

  /** The key rotations in the caller's tree that have not finished. */
  rotations(user: UserRecord): RotationsResponse {
    return {
      rotations: this.store.rotationsOf(user.id).map((r) => ({
        nodeId: r.rootId,
        startedAt: r.startedAt,
        attempt: r.attempt,
        parts: r.parts,
        ...(r.installing ? { installing: true as const } : {}),
      })),
    };
  }

  /**
   * One part of the new keys of a subtree whose rotation is pending (after an unshare).
   * Parts are kept until the last (`done`), which installs them all in one transaction
   * and ends the rotation; until then main refuses changes under the subtree, so
   * nothing is written under the keys the revoked user held.
   *
   * Locks do not hold it up, unlike rm and mv: a rotation that a lock could refuse is
   * one a grantee could put off for good, by locking (and locking again after the owner
   * unlocks) a node inside. Nor does it need to wait: it moves, renames and deletes
   * nothing, and a lock holder's change made under the old keys is refused
   * (VERSION_CONFLICT), never kept unreadable (a put opens the keys afresh and commits
   * again).
   */
  async rekey(user: UserRecord, id: string, req: RekeyRequest): Promise<RekeyResponse> {
    this.authorize(user, id, 'owner', 'rekey');
    // As share checks it: a grant its grantee would leave out is refused here, with a
    // reason, not installed to fail later where no one sees why. Grants are few (one
    // per user a node is shared with), so this costs little next to the part's nodes.
    // A refused part ends its attempt: what it sent before is dropped, so the owner's
    // next try begins at once instead of waiting for this attempt to be seen stalled.
    try {
      this.checkRekeyGrants(user, req.grants);
    } catch (err) {
      this.store.dropAttempt(id, req.attempt);
      throw err;
    }
    this.store.stageRekey(id, req.attempt, req.nodes, req.grants, req.replacing ?? null);
    if (!req.done) return { done: false };
    const nodes = this.store.beginInstall(id, req.attempt);
    await this.install(id);
    if (this.stopping.signal.aborted)
      throw new SedfsError(
        'SEDFS_ERR_UNREACHABLE',
        'main is stopping: it installs the rest of the keys when it starts again',
      );
    this.log.info({ user: user.id, node: id, nodes }, 'keys replaced after an unshare');
    return { done: true, nodes };
  }

  /**
   * Installs a rotation's checked keys (see beginInstall), a step of
   * `stepNodes` nodes at a time with the event loop free in between: in one transaction
   * a subtree of 500,000 nodes held main's only thread 6 s, every other request and
   * heartbeat waiting. Meanwhile requests under the rotation wait (notInstalling). A
   * step that fails (main's disk full) is tried again, later each time; a main that
   * stops goes on at its next start. Resolves once the rotation has ended.
   */
  private install(rootId: string): Promise<void> {
    const running = this.installs.get(rootId);
    if (running) return running;
    const step = this.installing.stepNodes ?? INSTALL_STEP_NODES;
    const betweenSteps = this.installing.betweenSteps ?? (() => new Promise<void>((r) => setImmediate(r)));
    const failed = atMostOnceAMinute((times: number, err: Error) =>
      this.log.error(
        { node: rootId, times, reason: err.message },
        'a step of installing new keys failed: tried again shortly, requests under the folder waiting (said at most once a minute)',
      ),
    );
    // The audit line in the last step's transaction, as share's: a line that cannot be
    // written (a full disk) holds the rotation's end until it can be. None for a rotation
    // whose folder was removed meanwhile (nothing was installed).
    const oneStep = async () =>
      this.store.atomically(() => {
        const last = this.store.installStep(rootId, step, this.now());
        const ownerId = last ? this.store.getNode(rootId)?.ownerId : undefined;
        if (ownerId) this.audit.write({ event: 'rekey', user: ownerId, node: rootId });
        return last;
      });
    const run = async () => {
      while (!this.stopping.signal.aborted) {
        // Thrown only once main is stopping: the rest is installed at its next start.
        const ended = await retryWithBackoff(oneStep, {
          isFinal: () => this.stopping.signal.aborted,
          onRetry: (err) => failed.note(err as Error),
          signal: this.stopping.signal,
        }).catch(() => true);
        if (ended) return;
        await betweenSteps();
      }
    };
    // Recorded before its first step: requests under the folder wait from then on.
    const done: Promise<void> = Promise.resolve()
      .then(run)
      .finally(() => {
        if (this.installs.get(rootId) === done) this.installs.delete(rootId);
      });
    this.installs.set(rootId, done);
    return done;
  }

  /** Stops installing (main is stopping): what is left goes on at the next start. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.allSettled([...this.installs.values()]);
  }

  /** Refuses a rekey part's grant its grantee would leave out, or that an older client made. */
  private checkRekeyGrants(user: UserRecord, grants: RekeyRequest['grants']): void {
    for (const g of grants) {
      const signedAt = datedGrant(g);
      if (g.sealedName === undefined) throw olderClient();
      const kept = this.store.grantsOnPath(g.nodeId, g.granteeId).find((k) => k.depth === 0);
      const signed = { nodeId: g.nodeId, sealedKey: g.sealedKey, sealedName: g.sealedName, signedAt };
      if (kept && !grantSignedBy(user.signKey, signed, g.signature))
        throw new SedfsError(
          'SEDFS_ERR_BAD_REQUEST',
          `the new key of a grant on ${g.nodeId} is not signed with your key over its name`,
        );
      notBefore({ signedAt, signature: g.signature }, kept);
    }
  }

  /**
   * Refuses a change under a subtree whose keys an unshare has yet to replace: it would
   * be made under keys the revoked user holds. `exceptRoot`: removing the rotation's
   * root itself (or anything above it) takes the whole subtree away, which is fine.
   */
  private notRekeying(nodeId: string, exceptRoot = false): void {
    const root = this.store.rotationOnPath(nodeId);
    if (!root || (exceptRoot && root === nodeId)) return;
    throw new SedfsError(
      'SEDFS_ERR_REKEY_PENDING',
      'an unshare is replacing the keys here; changes wait until it is done (if it was cut short, its owner finishes it with: sedfs unshare --finish)',
    );
  }

  /** Drops the locks `granteeId` holds under `rootId` on nodes they may no longer write (unshare, or shared again to read). */
  private releaseRevokedLocks(
    owner: UserRecord,
    rootId: string,
    granteeId: string,
    op: 'unshare' | 'share',
  ): void {
    const grantee = this.store.userById(granteeId);
    if (!grantee) return;
    let released = 0;
    for (const lock of this.store.locksHeldIn(rootId, granteeId, this.now())) {
      const node = this.store.getNode(lock.nodeId);
      const left = node ? this.access(grantee, node) : undefined;
      if (left === 'write' || left === 'owner') continue;
      this.store.deleteLock(lock.nodeId);
      this.audit.write({
        event: 'unlock',
        user: owner.id,
        node: lock.nodeId,
        target: granteeId,
        op,
      });
      released++;
    }
    if (released > 0)
      this.log.info(
        { node: rootId, grantee: granteeId, locks: released },
        'locks a user held where they can no longer write were released',
      );
  }

  /**
   * Takes or renews an exclusive write lease on a node. A renewal never shortens the
   * lease: a command that locks for its own few minutes (`edit`) must not cut short the
   * hour its user took by hand; `renewed` tells it the lock was already theirs.
   */
  lock(user: UserRecord, id: string, ttlSeconds: number): LockResponse {
    const node = this.authorize(user, id, 'write', 'lock');
    this.unlocked(user, id);
    // A folder's lock covers everything in it: over another user's lock inside, it would
    // take that lock's file from its holder while their lease still runs.
    this.nothingLockedInside(user, node);
    const now = this.now();
    const own = this.store.locksOnPath(id, now).find((l) => l.nodeId === id && l.holderId === user.id);
    const expiresAt = Math.max(now + ttlSeconds * 1000, own?.expiresAt ?? 0);
    this.store.atomically(() => {
      this.store.setLock({ nodeId: id, holderId: user.id, expiresAt }, now);
      this.audit.write({ event: 'lock', user: user.id, node: id });
    });
    return { holder: user.name, expiresAt, renewed: own !== undefined };
  }

  /** The holder, or the owner of the node, may release a lock. */
  unlock(user: UserRecord, id: string): void {
    const node = this.authorize(user, id, 'write', 'unlock');
    const held = this.store.locksOnPath(id, this.now()).find((l) => l.nodeId === id);
    if (held && held.holderId !== user.id && node.ownerId !== user.id) {
      const holder = this.store.userById(held.holderId)?.name ?? 'another user';
      throw new SedfsError(
        'SEDFS_ERR_LOCKED',
        `locked by ${holder} until ${new Date(held.expiresAt).toISOString()}`,
      );
    }
    this.store.atomically(() => {
      this.store.deleteLock(id);
      this.audit.write({ event: 'unlock', user: user.id, node: id });
    });
  }
}

/**
 * Refuses what a client wrapped or encrypted under a node key it opened before an
 * unshare replaced it (see ExpectWrappedKey): kept, it would be unreadable to everyone.
 */
function keysUnchanged(node: NodeRecord, expected: string | undefined): void {
  // Required wherever a key can be replaced (every node but a home folder, which is never
  // shared, so never re-keyed): a client that left it out could write under a key an
  // unshare replaced, one the revoked user holds.
  if (expected === undefined) {
    if (node.wrappedKey === null) return;
    throw new SedfsError(
      'SEDFS_ERR_BAD_REQUEST',
      'the wrapped key the client opened this folder or file with is required (expectWrappedKey, expectParentWrappedKey)',
    );
  }
  if (node.wrappedKey !== expected)
    throw new SedfsError(
      'SEDFS_ERR_VERSION_CONFLICT',
      'its keys were replaced meanwhile (the folder was unshared); run it again',
    );
}

/** A client from before grants were dated (2026-11-29) makes grants its grantees would refuse. */
const olderClient = () =>
  new SedfsError(
    'SEDFS_ERR_BAD_REQUEST',
    'this sedfs makes undated grants, which those who saw a dated one refuse: upgrade it (grants are dated since 2026-11-29)',
  );

/**
 * A grant's `signedAt`, which every client since 2026-11-29 sends, no more than a day
 * ahead (as grantees take it): a grant dated further ahead would be left out by its
 * grantee and, stored, refuse every later grant of the share until then.
 */
function datedGrant(g: { signedAt?: number | undefined }): number {
  if (g.signedAt === undefined) throw olderClient();
  if (g.signedAt > Date.now() + GRANT_DATE_AHEAD_MS)
    throw new SedfsError(
      'SEDFS_ERR_BAD_REQUEST',
      `this grant is dated ${new Date(g.signedAt).toISOString()}, over a day ahead of main's clock: this computer's clock is wrong; set it right and try again`,
    );
  return g.signedAt;
}

/**
 * Refuses a grant dated before the one it replaces: its grantee, having seen that one,
 * would leave it out as if main were handing back an old grant. The owner's clock is
 * behind (another computer's, perhaps), and is told so now rather than the grantee later.
 * Nor may it bear the same date unless it is the same grant (a request sent again): of
 * two grants of one date, a grantee who saw either would take the other as fresh.
 */
function notBefore(
  grant: { signedAt: number; signature: string },
  replaced: { signedAt: number | null; signature: string | null } | undefined,
): void {
  if (!replaced?.signedAt || grant.signedAt > replaced.signedAt) return;
  if (grant.signedAt === replaced.signedAt && grant.signature === replaced.signature) return;
  const at = new Date(grant.signedAt).toISOString();
  if (grant.signedAt === replaced.signedAt)
    throw new SedfsError(
      'SEDFS_ERR_BAD_REQUEST',
      `this grant is dated ${at}, the very millisecond of the different one it replaces: try again`,
    );
  throw new SedfsError(
    'SEDFS_ERR_BAD_REQUEST',
    `this grant is dated ${at}, before the one it replaces (${new Date(replaced.signedAt).toISOString()}): this computer's clock is behind, or the one that made that grant was ahead; set the clock right and try again, or after that time`,
  );
}
