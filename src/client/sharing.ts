import { retryOnConflict } from '../common/retry.js';
import { fingerprint, sealTo } from '../crypto/identity.js';
import {
  decryptName,
  encryptName,
  nameMac,
  newNodeKey,
  unwrapContentKey,
  unwrapNodeKey,
  wrapContentKey,
  wrapNodeKey,
} from '../crypto/node-keys.js';
import { SedfsError } from '../protocol/errors.js';
import type {
  LockResponse,
  PermsResponse,
  SubtreeResponse,
  UnshareRequest,
  UserKeysResponse,
} from '../protocol/namespace-api.js';
import {
  type FileSystem,
  grantKeyContext,
  grantNameContext,
  keyWitness,
  type OpenNode,
} from './file-system.js';
import { joinPath, splitPath } from './paths.js';
import type { Pin } from './profile.js';

/** Where pinned public keys live; the CLI keeps them in the profile. */
export interface PinStore {
  pins(): Promise<Record<string, Pin>>;
  savePin(user: string, pin: Pin): Promise<void>;
}

export interface KeyCheck {
  fingerprint: string;
  /** true the first time this user's key is seen (it is pinned now) */
  newlyPinned: boolean;
}

/**
 * A user's public keys, checked against the pinned ones: seen for the first time they
 * are pinned; if they changed since, sharing stops with SEDFS_ERR_KEY_CHANGED unless
 * the caller confirmed the new key (`acceptNewKey`).
 */
export async function checkedUserKeys(
  fs: FileSystem,
  pins: PinStore,
  name: string,
  acceptNewKey = false,
): Promise<UserKeysResponse & KeyCheck> {
  const keys = await fs.client.call<UserKeysResponse>('GET', `/v1/users/${encodeURIComponent(name)}`);
  const fp = fingerprint(keys);
  const pinned = (await pins.pins())[name];
  if (pinned && pinned.fingerprint !== fp && !acceptNewKey) {
    throw new SedfsError(
      'SEDFS_ERR_KEY_CHANGED',
      `WARNING: ${name}'s key changed from ${pinned.fingerprint} to ${fp}. If ${name} really made a new key, run again with --accept-new-key; otherwise someone may be impersonating them.`,
    );
  }
  const pin = {
    fingerprint: fp,
    signKey: keys.signKey,
    boxKey: keys.boxKey,
    pinnedAt: new Date().toISOString(),
  };
  if (!pinned || pinned.fingerprint !== fp) await pins.savePin(name, pin);
  return { ...keys, fingerprint: fp, newlyPinned: !pinned };
}

/** Your own node at `path` (sharing works on what you own). */
async function ownNode(fs: FileSystem, path: string, cwd: string): Promise<OpenNode> {
  const node = await fs.resolve(path, cwd);
  if (node.virtual || node.entry.parentId === null) {
    throw new SedfsError(
      'SEDFS_ERR_BAD_REQUEST',
      `${node.path} cannot be shared: share a file or folder inside your home`,
    );
  }
  return node;
}

/** Seals the node's key and name to the user and records the permission on main. */
export async function share(
  fs: FileSystem,
  pins: PinStore,
  path: string,
  user: string,
  perm: 'read' | 'write',
  opts: { acceptNewKey?: boolean; cwd?: string } = {},
): Promise<KeyCheck> {
  const node = await ownNode(fs, path, opts.cwd ?? '/');
  const keys = await checkedUserKeys(fs, pins, user, opts.acceptNewKey);
  await fs.client.call('POST', `/v1/nodes/${node.entry.id}/grants`, {
    grantee: keys.id,
    perm,
    sealedKey: sealTo(keys.boxKey, node.key, grantKeyContext(node.entry.id)).toString('base64url'),
    sealedName: sealTo(keys.boxKey, Buffer.from(node.name, 'utf8'), grantNameContext(node.entry.id)).toString(
      'base64url',
    ),
    ...keyWitness('expectWrappedKey', node),
  });
  return keys;
}

/**
 * Revokes a user's grant and rotates every key in the subtree (metadata only: new node
 * keys, children re-wrapped, names re-encrypted, content keys re-wrapped, remaining
 * grantees re-sealed), all committed by main in one transaction.
 */
export async function unshare(
  fs: FileSystem,
  path: string,
  user: string,
  cwd = '/',
): Promise<{ nodes: number }> {
  const node = await ownNode(fs, path, cwd);
  const parent = await fs.resolve(joinPath(splitPath(node.path).slice(0, -1)));
  const target = await fs.client.call<UserKeysResponse>('GET', `/v1/users/${encodeURIComponent(user)}`);
  // Main refuses a re-key of a subtree that changed after it was read (a new version, a
  // node added, moved or renamed): read it again and re-key that.
  return retryOnConflict(UNSHARE_ATTEMPTS, () => rekey(fs, node, parent, target));
}

const UNSHARE_ATTEMPTS = 3;

/** One attempt at `unshare`: the subtree as it is now, every key in it replaced. */
async function rekey(
  fs: FileSystem,
  node: OpenNode,
  parent: OpenNode,
  target: UserKeysResponse,
): Promise<{ nodes: number }> {
  const tree = await fs.client.call<SubtreeResponse>('GET', `/v1/nodes/${node.entry.id}/subtree`);
  const byId = new Map(tree.nodes.map((n) => [n.id, n]));
  const oldKey = new Map<string, Buffer>([[node.entry.id, node.key]]);
  const newKey = new Map<string, Buffer>();
  const out: UnshareRequest['nodes'] = [];
  // Parents before children: each node's old key opens with its parent's old key.
  const order = [node.entry.id];
  const kids = new Map<string, string[]>();
  for (const n of tree.nodes)
    if (n.parentId && n.id !== node.entry.id) kids.set(n.parentId, [...(kids.get(n.parentId) ?? []), n.id]);
  for (let i = 0; i < order.length; i++) order.push(...(kids.get(order[i] as string) ?? []));
  for (const id of order) {
    const n = byId.get(id);
    if (!n) continue;
    const isRoot = id === node.entry.id;
    const key = newNodeKey();
    newKey.set(id, key);
    // Undefined below a node whose key does not open (see opened()).
    const parentOld = isRoot ? parent.key : oldKey.get(n.parentId as string);
    const parentNew = isRoot ? parent.key : (newKey.get(n.parentId as string) as Buffer);
    const own = isRoot
      ? node.key
      : parentOld && opened(() => unwrapNodeKey(parentOld, id, n.wrappedKey as string));
    if (own) oldKey.set(id, own);
    const entry: UnshareRequest['nodes'][number] = {
      id,
      wrappedKey: wrapNodeKey(parentNew, id, key),
      // Main refuses the re-key if the node was moved or renamed since it was read here.
      ...(n.wrappedKey ? { expectWrappedKey: n.wrappedKey } : {}),
    };
    if (!isRoot) {
      const name = parentOld ? rekeyedName(parentOld, n) : `unreadable name ${id.slice(0, 8)}`;
      entry.nameEnc = encryptName(parentNew, n.parentId as string, id, name);
      entry.nameMac = nameMac(parentNew, name);
    }
    if (n.versionId && n.contentKey) {
      const versionId = n.versionId;
      const contentKey = n.contentKey;
      const ck = own && opened(() => unwrapContentKey(own, versionId, contentKey));
      entry.contentKey = wrapContentKey(key, versionId, ck ?? newNodeKey());
      entry.versionId = versionId;
    }
    out.push(entry);
  }
  const grants = tree.grants
    .filter((g) => !(g.nodeId === node.entry.id && g.granteeId === target.id))
    .map((g) => ({
      nodeId: g.nodeId,
      granteeId: g.granteeId,
      sealedKey: sealTo(g.boxKey, newKey.get(g.nodeId) as Buffer, grantKeyContext(g.nodeId)).toString(
        'base64url',
      ),
    }));
  await fs.client.call('POST', `/v1/nodes/${node.entry.id}/unshare`, {
    grantee: target.id,
    nodes: out,
    grants,
  });
  return { nodes: out.length };
}

/**
 * A key of the subtree, or undefined if it does not open: a writer can store any bytes
 * as a wrapped key, and main cannot tell. Such a node (and what is below it, or its
 * content) was unreadable to everyone already; it gets fresh keys nobody can open the
 * old content with, so one planted entry cannot block the revocation of its writer.
 */
function opened(unwrap: () => Buffer): Buffer | undefined {
  try {
    return unwrap();
  } catch (err) {
    if (err instanceof SedfsError && err.code === 'SEDFS_ERR_DECRYPT') return undefined;
    throw err;
  }
}

/**
 * The name an entry keeps through a re-key: its own, unless it does not decrypt or is not
 * the name its MAC was made from (a writer can store such an entry; listings leave it
 * out). Those get a name that says so, unique by the node's id, so the re-key cannot
 * collide with the entry they shadowed, and the owner can see and remove them.
 */
function rekeyedName(parentKey: Buffer, n: SubtreeResponse['nodes'][number]): string {
  let name: string;
  try {
    name = decryptName(parentKey, n.parentId as string, n.id, n.nameEnc as string);
  } catch {
    return `unreadable name ${n.id.slice(0, 8)}`;
  }
  return nameMac(parentKey, name) === n.nameMac ? name : `${name} (conflict ${n.id.slice(0, 8)})`;
}

/** Who has what on a path, with inherited grants named by the folder they come from. */
export async function perms(
  fs: FileSystem,
  path: string,
  cwd = '/',
): Promise<PermsResponse & { path: string }> {
  const node = await fs.resolve(path, cwd);
  if (node.virtual)
    throw new SedfsError('SEDFS_ERR_BAD_REQUEST', `${node.path} is the view of others' shares`);
  const res = await fs.client.call<PermsResponse>('GET', `/v1/nodes/${node.entry.id}/perms`);
  // Name the folders grants come from by the caller's own paths for them.
  const names = splitPath(node.path);
  const pathOf = new Map<string, string>();
  for (let i = names.length; i > 0; i--) {
    const p = joinPath(names.slice(0, i));
    const n = await fs.find(p).catch(() => undefined);
    if (n && !n.virtual) pathOf.set(n.entry.id, p);
  }
  return {
    ...res,
    grants: res.grants.map((g) => ({ ...g, from: pathOf.get(g.from) ?? g.from })),
    path: node.path,
  };
}

export async function lock(
  fs: FileSystem,
  path: string,
  ttlSeconds: number,
  cwd = '/',
): Promise<LockResponse> {
  const node = await fs.resolve(path, cwd);
  return fs.client.call<LockResponse>('POST', `/v1/nodes/${node.entry.id}/lock`, { ttlSeconds });
}

export async function unlock(fs: FileSystem, path: string, cwd = '/'): Promise<void> {
  const node = await fs.resolve(path, cwd);
  await fs.client.call('DELETE', `/v1/nodes/${node.entry.id}/lock`);
}
