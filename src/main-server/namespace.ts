import type { Logger } from '../common/logger.js';
import { SedfsError } from '../protocol/errors.js';
import type {
  ContentResponse,
  MkdirRequest,
  MoveRequest,
  NodeEntry,
  VersionCommit,
} from '../protocol/namespace-api.js';
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

/**
 * The encrypted namespace: folders and files as nodes, each reachable only by its
 * owner (sharing extends this). An unknown node and someone else's node get the same
 * 404, so ids cannot be probed. Names arrive encrypted with a MAC for uniqueness.
 */
export class NamespaceService {
  constructor(
    private readonly store: NamespaceStore,
    private readonly blobs: BlobService,
    private readonly log: Logger,
    private readonly now: () => number,
    /** Called when chunks were freed, so their deletion starts soon. */
    private readonly onFreed: () => void,
  ) {}

  node(user: UserRecord, id: string): NodeRecord {
    const node = this.store.getNode(id);
    if (!node || node.ownerId !== user.id) throw new SedfsError('SEDFS_ERR_NOT_FOUND');
    return node;
  }

  private folder(user: UserRecord, id: string): NodeRecord {
    const node = this.node(user, id);
    if (node.kind !== 'dir') throw new SedfsError('SEDFS_ERR_NOT_A_FOLDER');
    return node;
  }

  children(user: UserRecord, id: string): NodeEntry[] {
    this.folder(user, id);
    return this.store.children(id).map(toEntry);
  }

  lookup(user: UserRecord, parentId: string, nameMac: string): NodeEntry {
    this.folder(user, parentId);
    const child = this.store.childByMac(parentId, nameMac);
    if (!child) throw new SedfsError('SEDFS_ERR_NOT_FOUND');
    return toEntry(child);
  }

  mkdir(user: UserRecord, parentId: string, req: MkdirRequest): NodeEntry {
    this.folder(user, parentId);
    const now = this.now();
    const node: NodeRecord = {
      id: req.id,
      ownerId: user.id,
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
    this.folder(user, req.parentId);
    if (this.store.isAncestor(id, req.parentId)) throw new SedfsError('SEDFS_ERR_MOVE_INTO_ITSELF');
    this.store.moveNode(id, req.parentId, req.nameMac, req.nameEnc, req.wrappedKey, this.now());
  }

  remove(user: UserRecord, id: string, recursive: boolean): void {
    const node = this.node(user, id);
    if (node.parentId === null)
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'the home folder cannot be removed');
    if (node.kind === 'dir' && !recursive && this.store.children(id).length > 0) {
      throw new SedfsError('SEDFS_ERR_NOT_EMPTY');
    }
    this.store.deleteNode(id, this.now());
    this.onFreed();
  }

  content(user: UserRecord, id: string): ContentResponse {
    const node = this.node(user, id);
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
      manifest: this.blobs.manifest(version.blobId),
    };
  }

  /** Commits an upload as a new file or a new version of one, atomically with its blob. */
  commitVersion(user: UserRecord, v: VersionCommit, blob: PreparedBlob): NodeEntry {
    const now = this.now();
    let target: VersionTarget;
    if ('parentId' in v.target) {
      this.folder(user, v.target.parentId);
      target = {
        kind: 'new',
        node: {
          id: v.target.nodeId,
          ownerId: user.id,
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
      const node = this.node(user, v.target.nodeId);
      if (node.kind !== 'file') throw new SedfsError('SEDFS_ERR_IS_A_FOLDER');
      target = { kind: 'existing', nodeId: node.id };
    }
    const nodeId = target.kind === 'new' ? target.node.id : target.nodeId;
    if (this.store.getVersion(v.versionId))
      throw new SedfsError('SEDFS_ERR_EXISTS', 'version id already used');
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
    blob.logCommitted();
    this.log.info({ user: user.id, node: nodeId, version: v.versionId, size: v.size }, 'version committed');
    this.onFreed();
    return toEntry(this.store.getNode(nodeId) as NodeRecord);
  }
}
