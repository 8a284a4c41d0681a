import type Database from 'better-sqlite3';
import { SedfsError } from '../../protocol/errors.js';
import type {
  GrantRecord,
  LockRecord,
  NamespaceStore,
  NodeRecord,
  PendingRotation,
  RekeyGrant,
  RekeyNode,
  SubtreeNode,
  SubtreePage,
  UserRecord,
  VersionRecord,
  VersionTarget,
} from './namespace-store.js';
import { inTransaction } from './transactions.js';

interface UserRow {
  id: string;
  name: string;
  sign_key: string;
  box_key: string;
  admin: number;
  root_id: string;
  root_sealed: string;
  created_at: number;
}

interface NodeRow {
  id: string;
  owner_id: string;
  parent_id: string | null;
  kind: 'dir' | 'file';
  name_mac: string | null;
  name_enc: string | null;
  wrapped_key: string | null;
  version_id: string | null;
  size: number;
  created_at: number;
  modified_at: number;
}

interface GrantRow {
  node_id: string;
  grantee_id: string;
  perm: 'read' | 'write';
  sealed_key: string;
  sealed_name: string;
  signature: string | null;
  signed_at: number | null;
  granted_at: number;
}

const toGrant = (r: GrantRow): GrantRecord => ({
  nodeId: r.node_id,
  granteeId: r.grantee_id,
  perm: r.perm,
  sealedKey: r.sealed_key,
  sealedName: r.sealed_name,
  signature: r.signature,
  signedAt: r.signed_at,
  grantedAt: r.granted_at,
});

/** The node and its ancestors with their distance from it, as a CTE named `up`. */
const UP = `WITH RECURSIVE up(id, depth) AS (SELECT ?, 0 UNION ALL
  SELECT n.parent_id, up.depth + 1 FROM nodes n JOIN up ON n.id = up.id WHERE n.parent_id IS NOT NULL)`;
/** The node `@root` and everything under it, as a CTE named `down`. */
const DOWN_ROOT = `WITH RECURSIVE down(id) AS (SELECT @root UNION ALL
  SELECT n.id FROM nodes n JOIN down ON n.parent_id = down.id)`;

const toUser = (r: UserRow): UserRecord => ({
  id: r.id,
  name: r.name,
  signKey: r.sign_key,
  boxKey: r.box_key,
  admin: r.admin === 1,
  rootId: r.root_id,
  rootSealed: r.root_sealed,
  createdAt: r.created_at,
});

const toNode = (r: NodeRow): NodeRecord => ({
  id: r.id,
  ownerId: r.owner_id,
  parentId: r.parent_id,
  kind: r.kind,
  nameMac: r.name_mac,
  nameEnc: r.name_enc,
  wrappedKey: r.wrapped_key,
  versionId: r.version_id,
  size: r.size,
  createdAt: r.created_at,
  modifiedAt: r.modified_at,
});

/** A row would repeat a key: a UNIQUE constraint's, or the primary key's (SQLite tells them apart). */
function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

function isPrimaryKeyViolation(err: unknown): boolean {
  return (err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/**
 * A client-chosen id that some row already has. The same answer whoever's row it is and
 * whatever it is, so it tells no more than that the id is taken (ids are 128-bit random:
 * only someone who was once given one can ask about it).
 */
const idTaken = (what: string) => new SedfsError('SEDFS_ERR_EXISTS', `that ${what} id is already in use`);

/**
 * Drops one reference from each of a blob's chunks and removes the blob. Chunks no
 * blob needs any more leave the chunk map, and each of their replicas is queued for
 * deletion on its file server, to be sent from `deleteFrom` on. Call inside a transaction.
 */
export function releaseBlob(db: Database.Database, blobId: string, now: number, deleteFrom: number): void {
  const chunkIds = db
    .prepare('SELECT chunk_id FROM blob_chunks WHERE blob_id = ?')
    .pluck()
    .all(blobId) as string[];
  db.prepare('DELETE FROM blob_chunks WHERE blob_id = ?').run(blobId);
  db.prepare('DELETE FROM blobs WHERE id = ?').run(blobId);
  const dec = db.prepare('UPDATE chunks SET refs = refs - 1 WHERE id = ? RETURNING refs');
  const queue = db.prepare(
    `INSERT OR IGNORE INTO chunk_deletions (chunk_id, server_id, queued_at, retry_at)
     SELECT chunk_id, server_id, ?, ? FROM replicas WHERE chunk_id = ?`,
  );
  const dropReplicas = db.prepare('DELETE FROM replicas WHERE chunk_id = ?');
  const dropChunk = db.prepare('DELETE FROM chunks WHERE id = ?');
  for (const id of chunkIds) {
    const row = dec.get(id) as { refs: number } | undefined;
    if (row && row.refs <= 0) {
      queue.run(now, deleteFrom, id);
      dropReplicas.run(id);
      dropChunk.run(id);
    }
  }
}

export class SqliteNamespaceStore implements NamespaceStore {
  constructor(
    private readonly db: Database.Database,
    /**
     * How long the chunks of a version replaced or removed stay on the file servers: a
     * reader that was given them before (`cat`, `get`, an append reading what it adds
     * to) can still fetch them while its read tickets last.
     */
    private readonly freedGraceMs = 0,
  ) {}

  atomically<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  countUsers(): number {
    return this.db.prepare('SELECT count(*) FROM users').pluck().get() as number;
  }

  createUser(user: UserRecord, home: NodeRecord, inviteHash?: string): void {
    this.db.transaction(() => {
      // The invite first: only someone holding a good one learns whether a name is taken.
      const inviteValid = this.db.prepare(
        'SELECT 1 FROM invites WHERE code_hash = ? AND used_by IS NULL AND expires_at > ?',
      );
      if (inviteHash !== undefined && !inviteValid.get(inviteHash, user.createdAt)) throw badInvite();
      try {
        this.db
          .prepare(
            `INSERT INTO users (id, name, sign_key, box_key, admin, root_id, root_sealed, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            user.id,
            user.name,
            user.signKey,
            user.boxKey,
            user.admin ? 1 : 0,
            user.rootId,
            user.rootSealed,
            user.createdAt,
          );
      } catch (err) {
        if (isUniqueViolation(err)) throw new SedfsError('SEDFS_ERR_USER_EXISTS');
        throw err;
      }
      this.insertNode(home);
      if (inviteHash !== undefined && !this.useInvite(inviteHash, user.id, user.createdAt)) throw badInvite();
    })();
  }

  userByName(name: string): UserRecord | undefined {
    const r = this.db.prepare('SELECT * FROM users WHERE name = ?').get(name) as UserRow | undefined;
    return r && toUser(r);
  }

  userById(id: string): UserRecord | undefined {
    const r = this.db.prepare('SELECT * FROM users WHERE id = ?').get(id) as UserRow | undefined;
    return r && toUser(r);
  }

  createInvite(codeHash: string, createdBy: string, now: number, expiresAt: number): void {
    this.db
      .prepare('INSERT INTO invites (code_hash, created_by, created_at, expires_at) VALUES (?, ?, ?, ?)')
      .run(codeHash, createdBy, now, expiresAt);
  }

  useInvite(codeHash: string, userId: string, now: number): boolean {
    return (
      this.db
        .prepare('UPDATE invites SET used_by = ? WHERE code_hash = ? AND used_by IS NULL AND expires_at > ?')
        .run(userId, codeHash, now).changes === 1
    );
  }

  createSession(tokenHash: string, userId: string, now: number, expiresAt: number): void {
    this.db
      .prepare('INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)')
      .run(tokenHash, userId, now, expiresAt);
  }

  sessionUser(tokenHash: string, now: number): UserRecord | undefined {
    const r = this.db
      .prepare(
        'SELECT u.* FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?',
      )
      .get(tokenHash, now) as UserRow | undefined;
    return r && toUser(r);
  }

  deleteSession(tokenHash: string): void {
    this.db.prepare('DELETE FROM sessions WHERE token_hash = ?').run(tokenHash);
  }

  getNode(id: string): NodeRecord | undefined {
    const r = this.db.prepare('SELECT * FROM nodes WHERE id = ?').get(id) as NodeRow | undefined;
    return r && toNode(r);
  }

  children(parentId: string): NodeRecord[] {
    return (this.db.prepare('SELECT * FROM nodes WHERE parent_id = ?').all(parentId) as NodeRow[]).map(
      toNode,
    );
  }

  childByMac(parentId: string, nameMac: string): NodeRecord | undefined {
    const r = this.db
      .prepare('SELECT * FROM nodes WHERE parent_id = ? AND name_mac = ?')
      .get(parentId, nameMac) as NodeRow | undefined;
    return r && toNode(r);
  }

  createNode(node: NodeRecord): void {
    this.db.transaction(() => {
      this.insertNode(node);
      if (node.parentId) this.touch(node.parentId, node.createdAt);
    })();
  }

  getVersion(id: string): VersionRecord | undefined {
    const r = this.db.prepare('SELECT * FROM versions WHERE id = ?').get(id) as
      | {
          id: string;
          node_id: string;
          blob_id: string;
          size: number;
          chunk_bytes: number;
          content_key: string;
          created_at: number;
        }
      | undefined;
    return (
      r && {
        id: r.id,
        nodeId: r.node_id,
        blobId: r.blob_id,
        size: r.size,
        chunkBytes: r.chunk_bytes,
        contentKey: r.content_key,
        createdAt: r.created_at,
      }
    );
  }

  commitVersion(target: VersionTarget, v: VersionRecord, commitBlob: () => void): void {
    // Within a batch's commit (commitVersions), part of its transaction (see inTransaction).
    inTransaction(this.db, () => {
      commitBlob();
      let previous: string | null = null;
      if (target.kind === 'new') {
        this.insertNode(target.node);
        if (target.node.parentId) this.touch(target.node.parentId, v.createdAt);
      } else {
        const node = this.getNode(target.nodeId);
        if (!node) throw new SedfsError('SEDFS_ERR_NOT_FOUND');
        if (node.kind !== 'file') throw new SedfsError('SEDFS_ERR_IS_A_FOLDER');
        previous = node.versionId;
      }
      try {
        this.db
          .prepare(
            `INSERT INTO versions (id, node_id, blob_id, size, chunk_bytes, content_key, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(v.id, v.nodeId, v.blobId, v.size, v.chunkBytes, v.contentKey, v.createdAt);
      } catch (err) {
        if (isUniqueViolation(err)) throw idTaken('version');
        throw err;
      }
      this.db
        .prepare('UPDATE nodes SET version_id = ?, size = ?, modified_at = ? WHERE id = ?')
        .run(v.id, v.size, v.createdAt, v.nodeId);
      if (previous) this.dropVersion(previous, v.createdAt);
    });
  }

  moveNode(
    id: string,
    parentId: string,
    nameMac: string,
    nameEnc: string,
    wrappedKey: string,
    now: number,
  ): void {
    this.db.transaction(() => {
      const before = this.getNode(id);
      try {
        this.db
          .prepare(
            'UPDATE nodes SET parent_id = ?, name_mac = ?, name_enc = ?, wrapped_key = ?, modified_at = ? WHERE id = ?',
          )
          .run(parentId, nameMac, nameEnc, wrappedKey, now, id);
      } catch (err) {
        if (isUniqueViolation(err)) throw new SedfsError('SEDFS_ERR_EXISTS');
        throw err;
      }
      if (before?.parentId) this.touch(before.parentId, now);
      this.touch(parentId, now);
    })();
  }

  deleteNode(id: string, now: number): void {
    this.db.transaction(() => {
      const node = this.getNode(id);
      if (!node) return;
      // Depth-first: children before their parent, so foreign keys hold at every step.
      const subtree = this.db
        .prepare(
          `WITH RECURSIVE t(id, depth) AS (SELECT ?, 0 UNION ALL
             SELECT n.id, t.depth + 1 FROM nodes n JOIN t ON n.parent_id = t.id)
           SELECT id FROM t ORDER BY depth DESC`,
        )
        .pluck()
        .all(id) as string[];
      const versionsOf = this.db.prepare('SELECT id FROM versions WHERE node_id = ?').pluck();
      const delNode = this.db.prepare('DELETE FROM nodes WHERE id = ?');
      for (const nid of subtree) {
        this.db.prepare('UPDATE nodes SET version_id = NULL WHERE id = ?').run(nid);
        for (const vid of versionsOf.all(nid) as string[]) this.dropVersion(vid, now);
        delNode.run(nid);
      }
      if (node.parentId) this.touch(node.parentId, now);
    })();
  }

  isAncestor(ancestorId: string, id: string): boolean {
    return (
      this.db
        .prepare(
          `WITH RECURSIVE up(id) AS (SELECT ? UNION ALL SELECT n.parent_id FROM nodes n JOIN up ON n.id = up.id
             WHERE n.parent_id IS NOT NULL)
           SELECT 1 FROM up WHERE id = ? LIMIT 1`,
        )
        .get(id, ancestorId) !== undefined
    );
  }

  grantsOnPath(nodeId: string, granteeId: string): (GrantRecord & { depth: number })[] {
    const rows = this.db
      .prepare(
        `${UP} SELECT g.*, up.depth FROM up JOIN grants g ON g.node_id = up.id WHERE g.grantee_id = ? ORDER BY up.depth`,
      )
      .all(nodeId, granteeId) as (GrantRow & { depth: number })[];
    return rows.map((r) => ({ ...toGrant(r), depth: r.depth }));
  }

  grantsAbove(nodeId: string): (GrantRecord & { depth: number })[] {
    const rows = this.db
      .prepare(
        `${UP} SELECT g.*, up.depth FROM up JOIN grants g ON g.node_id = up.id ORDER BY up.depth, g.grantee_id`,
      )
      .all(nodeId) as (GrantRow & { depth: number })[];
    return rows.map((r) => ({ ...toGrant(r), depth: r.depth }));
  }

  grantsTo(granteeId: string): GrantRecord[] {
    return (
      this.db
        .prepare('SELECT * FROM grants WHERE grantee_id = ? ORDER BY granted_at')
        .all(granteeId) as GrantRow[]
    ).map(toGrant);
  }

  putGrant(g: GrantRecord): void {
    this.db
      .prepare(
        `INSERT INTO grants (node_id, grantee_id, perm, sealed_key, sealed_name, signature, signed_at, granted_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (node_id, grantee_id) DO UPDATE SET perm = excluded.perm, sealed_key = excluded.sealed_key,
           sealed_name = excluded.sealed_name, signature = excluded.signature, signed_at = excluded.signed_at,
           granted_at = excluded.granted_at`,
      )
      .run(g.nodeId, g.granteeId, g.perm, g.sealedKey, g.sealedName, g.signature, g.signedAt, g.grantedAt);
  }

  subtreePage(rootId: string, after: string | undefined, limit: number): SubtreePage {
    const withKey = `SELECT n.*, v.content_key FROM nodes n LEFT JOIN versions v ON v.id = n.version_id`;
    const one = this.db.prepare(`${withKey} WHERE n.id = ?`);
    // Through the (parent_id, name_mac) index: a folder's children in MAC order, from a cursor.
    const childrenAfter = this.db.prepare(
      `${withKey} WHERE n.parent_id = @parent AND n.name_mac > @after ORDER BY n.name_mac LIMIT @limit`,
    );
    const toSubtreeNode = (r: NodeRow & { content_key: string | null }): SubtreeNode => ({
      ...toNode(r),
      contentKey: r.content_key,
    });
    const nodes: SubtreeNode[] = [];
    /**
     * Folders whose children are being walked: the last child's MAC, children read ahead,
     * and whether those are the last (a short read: no need to ask again).
     */
    const stack: { id: string; lastMac: string; ahead: SubtreeNode[]; readAll: boolean }[] = [];
    const enter = (n: SubtreeNode) => {
      if (n.kind === 'dir') stack.push({ id: n.id, lastMac: '', ahead: [], readAll: false });
    };
    if (after === undefined) {
      const root = one.get(rootId) as (NodeRow & { content_key: string | null }) | undefined;
      if (!root) throw new SedfsError('SEDFS_ERR_NOT_FOUND');
      nodes.push(toSubtreeNode(root));
      enter(nodes[0] as SubtreeNode);
    } else {
      // Where the last page ended: `after`'s folders up to the root, each walked as far as
      // the child on the way to `after`.
      const chain: SubtreeNode[] = [];
      for (let id: string | null = after; ; ) {
        const r = one.get(id) as (NodeRow & { content_key: string | null }) | undefined;
        // The same answer whether the node is elsewhere or nowhere.
        if (!r) throw notInSubtree();
        chain.unshift(toSubtreeNode(r));
        if (r.id === rootId) break;
        id = r.parent_id;
        if (id === null) throw notInSubtree();
      }
      for (let i = 0; i < chain.length - 1; i++)
        stack.push({
          id: (chain[i] as SubtreeNode).id,
          lastMac: chain[i + 1]?.nameMac ?? '',
          ahead: [],
          readAll: false,
        });
      enter(chain[chain.length - 1] as SubtreeNode);
    }
    // Pre-order (a folder, then everything in it): whoever reads the pages needs to keep
    // only the keys of the folders above the entry it is at.
    while (nodes.length < limit && stack.length > 0) {
      const top = stack[stack.length - 1] as (typeof stack)[number];
      if (top.ahead.length === 0) {
        if (top.readAll) {
          stack.pop();
          continue;
        }
        // Read ahead at most what the page has room for: a folder's children left over
        // when the page fills are read again by the next page, no more than a page's worth.
        const want = Math.min(limit - nodes.length, 256);
        const rows = childrenAfter.all({ parent: top.id, after: top.lastMac, limit: want }) as (NodeRow & {
          content_key: string | null;
        })[];
        top.readAll = rows.length < want;
        if (rows.length === 0) continue;
        top.ahead = rows.map(toSubtreeNode).reverse();
      }
      const next = top.ahead.pop() as SubtreeNode;
      top.lastMac = next.nameMac ?? '';
      nodes.push(next);
      enter(next);
    }
    // One query for the page's grants, through the primary key (node_id, grantee_id).
    const grants = (
      this.db
        .prepare('SELECT g.* FROM json_each(?) ids JOIN grants g ON g.node_id = ids.value')
        .all(JSON.stringify(nodes.map((n) => n.id))) as GrantRow[]
    ).map(toGrant);
    return { nodes, grants, ...(nodes.length >= limit ? { next: nodes[nodes.length - 1]?.id } : {}) };
  }

  revoke(rootId: string, granteeId: string, now: number): string | undefined {
    return this.db.transaction(() => {
      const gone = this.db
        .prepare('DELETE FROM grants WHERE node_id = ? AND grantee_id = ?')
        .run(rootId, granteeId);
      if (gone.changes !== 1) return undefined;
      const above = this.rotationOnPath(rootId);
      // Rotations are few: one pending below this node is replaced by this one, unless
      // its keys are being installed (dropped half-way, they would leave keys wrapped
      // under others that are not their parents' any more); nor is one above it being
      // installed taken for this one. Thrown, the transaction keeps the grant: the unshare
      // is asked again once the install is done (the client waits for it).
      const pending = this.db.prepare('SELECT root_id, installed_upto FROM rotations').all() as {
        root_id: string;
        installed_upto: string | null;
      }[];
      const touched = pending.filter(
        (r) => r.root_id === above || (!above && this.isAncestor(rootId, r.root_id)),
      );
      if (touched.some((r) => r.installed_upto !== null)) throw new SedfsError('SEDFS_ERR_KEYS_INSTALLING');
      if (above) return above;
      const drop = this.db.prepare('DELETE FROM rotations WHERE root_id = ?');
      for (const r of touched) drop.run(r.root_id);
      this.db.prepare('INSERT INTO rotations (root_id, started_at) VALUES (?, ?)').run(rootId, now);
      return rootId;
    })();
  }

  rotationOnPath(nodeId: string): string | undefined {
    // Asked at every change; rotations are few and brief, mostly there are none.
    if (this.db.prepare('SELECT 1 FROM rotations LIMIT 1').get() === undefined) return undefined;
    return this.db
      .prepare(
        `${UP} SELECT r.root_id FROM up JOIN rotations r ON r.root_id = up.id ORDER BY up.depth DESC LIMIT 1`,
      )
      .pluck()
      .get(nodeId) as string | undefined;
  }

  rotationsOf(ownerId: string): PendingRotation[] {
    return (
      this.db
        .prepare(
          `SELECT r.root_id AS rootId, r.started_at AS startedAt, r.attempt, r.parts,
             r.installed_upto IS NOT NULL AS installing
           FROM rotations r JOIN nodes n ON n.id = r.root_id
           WHERE n.owner_id = ? ORDER BY r.started_at, r.root_id`,
        )
        .all(ownerId) as (Omit<PendingRotation, 'installing'> & { installing: number })[]
    ).map((r) => ({ ...r, installing: r.installing === 1 }));
  }

  stageRekey(
    rootId: string,
    attempt: string,
    nodes: RekeyNode[],
    grants: RekeyGrant[],
    replacing: string | null = null,
  ): void {
    this.db.transaction(() => {
      const kept = this.pendingRotation(rootId);
      if (kept.installing) throw new SedfsError('SEDFS_ERR_KEYS_INSTALLING');
      if (kept.attempt !== attempt) {
        // Compare and set: an attempt takes over only from the one its client saw, so two
        // clients finishing one rotation cannot drop each other's parts in turn.
        if (replacing !== kept.attempt) throw new SedfsError('SEDFS_ERR_REKEY_TAKEN_OVER');
        this.db.prepare('DELETE FROM rotation_nodes WHERE root_id = ?').run(rootId);
        this.db.prepare('DELETE FROM rotation_grants WHERE root_id = ?').run(rootId);
        this.db.prepare('UPDATE rotations SET attempt = ?, parts = 0 WHERE root_id = ?').run(attempt, rootId);
      }
      this.db.prepare('UPDATE rotations SET parts = parts + 1 WHERE root_id = ?').run(rootId);
      const node = this.db.prepare(
        `INSERT OR REPLACE INTO rotation_nodes
           (root_id, node_id, wrapped_key, name_enc, name_mac, content_key, version_id, expect_wrapped_key)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const n of nodes)
        node.run(
          rootId,
          n.id,
          n.wrappedKey,
          n.nameEnc ?? null,
          n.nameMac ?? null,
          n.contentKey ?? null,
          n.versionId ?? null,
          n.expectWrappedKey ?? null,
        );
      const grant = this.db.prepare(
        `INSERT OR REPLACE INTO rotation_grants (root_id, node_id, grantee_id, sealed_key, sealed_name, signature, signed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const g of grants)
        grant.run(
          rootId,
          g.nodeId,
          g.granteeId,
          g.sealedKey,
          g.sealedName ?? null,
          g.signature,
          g.signedAt ?? null,
        );
    })();
  }

  dropAttempt(rootId: string, attempt: string): void {
    this.db.transaction(() => {
      const under = this.db
        .prepare('SELECT attempt FROM rotations WHERE root_id = ? AND installed_upto IS NULL')
        .pluck()
        .get(rootId);
      if (under !== attempt) return;
      this.db.prepare('DELETE FROM rotation_nodes WHERE root_id = ?').run(rootId);
      this.db.prepare('DELETE FROM rotation_grants WHERE root_id = ?').run(rootId);
      this.db.prepare('UPDATE rotations SET attempt = NULL, parts = 0 WHERE root_id = ?').run(rootId);
    })();
  }

  applyRekey(rootId: string, attempt: string, now: number): number {
    return this.db.transaction(() => {
      const nodes = this.beginInstall(rootId, attempt);
      while (!this.installStep(rootId, Number.MAX_SAFE_INTEGER, now));
      return nodes;
    })();
  }

  beginInstall(rootId: string, attempt: string): number {
    return this.db.transaction(() => {
      const conflict = (why: string) =>
        new SedfsError(
          'SEDFS_ERR_VERSION_CONFLICT',
          `the shared folder changed meanwhile (${why}); try again`,
        );
      if (this.pendingRotation(rootId).attempt !== attempt) throw conflict('another attempt began');
      // Set-wise, in SQL: a subtree may hold millions of nodes, none of them loaded here.
      // The subtree is walked once for every count (each walk of 500,000 nodes held
      // main's thread 0.3-0.7 s, and there were four), the staged rows read once for
      // every check of theirs.
      const staged = this.db
        .prepare(
          `SELECT (SELECT count(*) FROM rotation_nodes WHERE root_id = @root) AS nodes,
                  (SELECT count(*) FROM rotation_grants WHERE root_id = @root) AS grants`,
        )
        .get({ root: rootId }) as { nodes: number; grants: number };
      const tree = this.db
        .prepare(
          `${DOWN_ROOT} SELECT count(*) AS nodes, count(s.node_id) AS matched,
             coalesce(sum((SELECT count(*) FROM grants g WHERE g.node_id = down.id)), 0) AS grants,
             coalesce(sum((SELECT count(*) FROM grants g JOIN rotation_grants r ON r.root_id = @root
               AND r.node_id = g.node_id AND r.grantee_id = g.grantee_id WHERE g.node_id = down.id)), 0)
               AS grantsMatched
           FROM down LEFT JOIN rotation_nodes s ON s.root_id = @root AND s.node_id = down.id`,
        )
        .get({ root: rootId }) as { nodes: number; matched: number; grants: number; grantsMatched: number };
      if (staged.nodes !== tree.nodes || tree.matched !== tree.nodes) throw conflict('node count');
      if (staged.grants !== tree.grants || tree.grantsMatched !== tree.grants) throw conflict('grants');
      const stale = this.db
        .prepare(
          `SELECT
             -- Moved or renamed since the client read it: its new key and name would be made
             -- for the folder it was in, and unreadable where it is.
             coalesce(max(s.expect_wrapped_key IS NOT NULL AND s.expect_wrapped_key IS NOT n.wrapped_key), 0) AS moved,
             coalesce(max(s.node_id != @root AND (s.name_enc IS NULL OR s.name_mac IS NULL)), 0) AS unnamed,
             -- Re-wrapped from the version the client read: a newer one would get the wrong key.
             coalesce(max(n.version_id IS NOT NULL AND (s.content_key IS NULL OR s.version_id IS NOT n.version_id)), 0)
               AS newVersion,
             -- A new name alike to one in its folder now (before or after its own step),
             -- through the folder's (parent_id, name_mac) index.
             coalesce(max(s.node_id != @root AND EXISTS (SELECT 1 FROM nodes o
               WHERE o.parent_id = n.parent_id AND o.name_mac = s.name_mac AND o.id != n.id)), 0) AS taken
           FROM rotation_nodes s LEFT JOIN nodes n ON n.id = s.node_id WHERE s.root_id = @root`,
        )
        .get({ root: rootId }) as { moved: number; unnamed: number; newVersion: number; taken: number };
      if (stale.moved) throw conflict('a node was moved or renamed');
      if (stale.unnamed) throw conflict('missing name');
      if (stale.newVersion) throw conflict('a file has a new version');
      // New names that would clash in a folder, found now, while nothing is installed, and
      // not by a step half-way, which could neither go on nor undo the steps before: a
      // new one alike to a name there now (above), or two new ones alike. Distinct names
      // under a new key never meet; a client that sends them alike is refused. New MACs
      // alike anywhere in the subtree are few (none from a client that means well):
      // found along the staged rows' (root_id, name_mac) index, then their folders compared.
      const twice = () =>
        this.db
          .prepare(
            `WITH twice AS (SELECT name_mac FROM rotation_nodes WHERE root_id = @root AND node_id != @root
               GROUP BY name_mac HAVING count(*) > 1)
             SELECT 1 FROM twice JOIN rotation_nodes s ON s.root_id = @root AND s.name_mac = twice.name_mac
               JOIN nodes n ON n.id = s.node_id
             GROUP BY n.parent_id, s.name_mac HAVING count(*) > 1 LIMIT 1`,
          )
          .get({ root: rootId });
      if (stale.taken || twice())
        throw new SedfsError('SEDFS_ERR_EXISTS', 'two re-encrypted names in one folder are the same');
      this.db.prepare("UPDATE rotations SET installed_upto = '' WHERE root_id = ?").run(rootId);
      return tree.nodes;
    })();
  }

  installStep(rootId: string, limit: number, now: number): boolean {
    return this.db.transaction(() => {
      const from = this.db
        .prepare('SELECT installed_upto FROM rotations WHERE root_id = ? AND installed_upto IS NOT NULL')
        .pluck()
        .get(rootId) as string | undefined;
      // Gone (its subtree removed from above meanwhile): nothing left to install.
      if (from === undefined) return true;
      // The next `limit` staged nodes by id, through the staged rows' primary key.
      const last = this.db
        .prepare(
          `SELECT max(node_id) FROM (SELECT node_id FROM rotation_nodes
           WHERE root_id = @root AND node_id > @from ORDER BY node_id LIMIT @limit)`,
        )
        .pluck()
        .get({ root: rootId, from, limit }) as string | null;
      if (last !== null) {
        const range = { root: rootId, from, upto: last, now };
        this.db
          .prepare(
            `UPDATE versions SET content_key = s.content_key FROM rotation_nodes s JOIN nodes n ON n.id = s.node_id
             WHERE s.root_id = @root AND s.node_id > @from AND s.node_id <= @upto
               AND n.version_id = s.version_id AND versions.id = n.version_id`,
          )
          .run(range);
        try {
          // The subtree's root keeps its name: its parent's key did not change.
          this.db
            .prepare(
              `UPDATE nodes SET wrapped_key = s.wrapped_key,
                 name_enc = CASE WHEN nodes.id = @root THEN nodes.name_enc ELSE s.name_enc END,
                 name_mac = CASE WHEN nodes.id = @root THEN nodes.name_mac ELSE s.name_mac END
               FROM rotation_nodes s
               WHERE s.root_id = @root AND s.node_id > @from AND s.node_id <= @upto AND nodes.id = s.node_id`,
            )
            .run(range);
        } catch (err) {
          // A new name equal to one not yet replaced in its folder: not what a client
          // re-encrypting distinct names sends (their MACs do not meet).
          if (isUniqueViolation(err))
            throw new SedfsError('SEDFS_ERR_EXISTS', 'two re-encrypted names in one folder are the same');
          throw err;
        }
        this.db
          .prepare(
            `UPDATE grants SET sealed_key = s.sealed_key, sealed_name = coalesce(s.sealed_name, grants.sealed_name),
               signature = s.signature, signed_at = s.signed_at,
               granted_at = @now
             FROM rotation_grants s
             WHERE s.root_id = @root AND s.node_id > @from AND s.node_id <= @upto
               AND grants.node_id = s.node_id AND grants.grantee_id = s.grantee_id`,
          )
          .run(range);
        // Done with: deleted with the step, not all at once with the rotation (a cascade
        // of 200,000 rows held main's thread 0.8 s).
        this.db
          .prepare(
            'DELETE FROM rotation_grants WHERE root_id = @root AND node_id > @from AND node_id <= @upto',
          )
          .run(range);
        this.db
          .prepare(
            'DELETE FROM rotation_nodes WHERE root_id = @root AND node_id > @from AND node_id <= @upto',
          )
          .run(range);
        this.db.prepare('UPDATE rotations SET installed_upto = ? WHERE root_id = ?').run(last, rootId);
        return false;
      }
      this.db.prepare('DELETE FROM rotations WHERE root_id = ?').run(rootId);
      return true;
    })();
  }

  installingRotations(): string[] {
    return this.db
      .prepare('SELECT root_id FROM rotations WHERE installed_upto IS NOT NULL ORDER BY started_at')
      .pluck()
      .all() as string[];
  }

  private pendingRotation(rootId: string): { attempt: string | null; installing: boolean } {
    const row = this.db
      .prepare('SELECT attempt, installed_upto IS NOT NULL AS installing FROM rotations WHERE root_id = ?')
      .get(rootId) as { attempt: string | null; installing: number } | undefined;
    if (!row) throw new SedfsError('SEDFS_ERR_NOT_FOUND', 'no key rotation is pending for this node');
    return { attempt: row.attempt, installing: row.installing === 1 };
  }

  locksOnPath(nodeId: string, now: number): LockRecord[] {
    return this.db
      .prepare(
        `${UP} SELECT l.node_id AS nodeId, l.holder_id AS holderId, l.expires_at AS expiresAt
         FROM up JOIN locks l ON l.node_id = up.id WHERE l.expires_at > ? ORDER BY up.depth`,
      )
      .all(nodeId, now) as LockRecord[];
  }

  lockBelow(nodeId: string, userId: string, now: number): LockRecord | undefined {
    // Up from each lock others hold in the same owner's tree (a tree has one owner), not
    // down the whole subtree: locks are few, a folder may hold millions of nodes. CROSS
    // JOIN keeps the locks the outer loop: the planner would otherwise scan the nodes.
    return this.db
      .prepare(
        `WITH RECURSIVE up(lock_id, id) AS (
           SELECT l.node_id, n.parent_id FROM locks l CROSS JOIN nodes n ON n.id = l.node_id
           WHERE l.expires_at > @now AND l.holder_id != @user
             AND n.owner_id = (SELECT owner_id FROM nodes WHERE id = @node) AND n.parent_id IS NOT NULL
           UNION ALL SELECT up.lock_id, n.parent_id FROM nodes n JOIN up ON n.id = up.id
           WHERE n.parent_id IS NOT NULL AND up.id != @node)
         SELECT l.node_id AS nodeId, l.holder_id AS holderId, l.expires_at AS expiresAt
         FROM up JOIN locks l ON l.node_id = up.lock_id WHERE up.id = @node LIMIT 1`,
      )
      .get({ node: nodeId, user: userId, now }) as LockRecord | undefined;
  }

  locksHeldIn(nodeId: string, holderId: string, now: number): LockRecord[] {
    // Up from each of the holder's locks, as lockBelow does: a user holds few locks.
    return this.db
      .prepare(
        `WITH RECURSIVE up(lock_id, id) AS (
           SELECT node_id, node_id FROM locks WHERE expires_at > @now AND holder_id = @holder
           UNION ALL SELECT up.lock_id, n.parent_id FROM nodes n JOIN up ON n.id = up.id
           WHERE n.parent_id IS NOT NULL AND up.id != @node)
         SELECT l.node_id AS nodeId, l.holder_id AS holderId, l.expires_at AS expiresAt
         FROM up JOIN locks l ON l.node_id = up.lock_id WHERE up.id = @node`,
      )
      .all({ node: nodeId, holder: holderId, now }) as LockRecord[];
  }

  setLock(lock: LockRecord, now: number): void {
    this.db.transaction(() => {
      // Every lock check reads the table (lockBelow reads all of a tree's locks): expired
      // rows would only slow it. Few locks are live at once, so the scan is short.
      this.db.prepare('DELETE FROM locks WHERE expires_at <= ?').run(now);
      this.db
        .prepare(
          `INSERT INTO locks (node_id, holder_id, expires_at) VALUES (?, ?, ?)
           ON CONFLICT (node_id) DO UPDATE SET holder_id = excluded.holder_id, expires_at = excluded.expires_at`,
        )
        .run(lock.nodeId, lock.holderId, lock.expiresAt);
    })();
  }

  deleteLock(nodeId: string): void {
    this.db.prepare('DELETE FROM locks WHERE node_id = ?').run(nodeId);
  }

  private dropVersion(versionId: string, now: number): void {
    const blobId = this.db.prepare('SELECT blob_id FROM versions WHERE id = ?').pluck().get(versionId) as
      | string
      | undefined;
    this.db.prepare('DELETE FROM versions WHERE id = ?').run(versionId);
    if (blobId) releaseBlob(this.db, blobId, now, now + this.freedGraceMs);
  }

  private insertNode(n: NodeRecord): void {
    try {
      this.db
        .prepare(
          `INSERT INTO nodes (id, owner_id, parent_id, kind, name_mac, name_enc, wrapped_key, version_id, size, created_at, modified_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          n.id,
          n.ownerId,
          n.parentId,
          n.kind,
          n.nameMac,
          n.nameEnc,
          n.wrappedKey,
          n.versionId,
          n.size,
          n.createdAt,
          n.modifiedAt,
        );
    } catch (err) {
      if (isPrimaryKeyViolation(err)) throw idTaken('node');
      if (isUniqueViolation(err)) throw new SedfsError('SEDFS_ERR_EXISTS');
      throw err;
    }
  }

  private touch(nodeId: string, now: number): void {
    this.db.prepare('UPDATE nodes SET modified_at = max(modified_at, ?) WHERE id = ?').run(now, nodeId);
  }
}

function notInSubtree(): SedfsError {
  return new SedfsError('SEDFS_ERR_BAD_REQUEST', 'the page cursor (after) is not a node of this subtree');
}

function badInvite(): SedfsError {
  return new SedfsError('SEDFS_ERR_INVITE_REQUIRED', 'the invite code is unknown, used or expired');
}
