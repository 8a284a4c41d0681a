import { retryOnConflict, retryWhileBusy } from '../common/retry.js';
import { randomHexId } from '../crypto/hash.js';
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
import {
  type LockResponse,
  type NodeEntry,
  type PermsResponse,
  REKEY_PART_MAX,
  type RekeyRequest,
  type RekeyResponse,
  type RotationsResponse,
  type SubtreeResponse,
  type UnshareResponse,
  type UserKeysResponse,
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

export interface RekeyOptions {
  /** bytes of JSON at most in one part of the new keys (main takes up to 16 MiB) */
  partBytes?: number;
}

/**
 * Revokes a user's grant, then rotates every key in the subtree (metadata only: new
 * node keys, children re-wrapped, names re-encrypted, content keys re-wrapped,
 * remaining grantees re-sealed). Main refuses the user as soon as the first step
 * returns, whatever becomes of the second. If the rotation does not finish, this
 * throws SEDFS_ERR_REKEY_PENDING saying how to finish it (`finishRotations`); until
 * then main refuses changes under the node.
 */
export async function unshare(
  fs: FileSystem,
  path: string,
  user: string,
  cwd = '/',
  opts: RekeyOptions = {},
): Promise<{ nodes: number } & Pick<UnshareResponse, 'stillHas' | 'sharesInside'>> {
  const node = await ownNode(fs, path, cwd);
  const target = await fs.client.call<UserKeysResponse>('GET', `/v1/users/${encodeURIComponent(user)}`);
  let answer: UnshareResponse;
  try {
    answer = await fs.client.call<UnshareResponse>('POST', `/v1/nodes/${node.entry.id}/unshare`, {
      grantee: target.id,
    });
  } catch (err) {
    // Revoked already, by an unshare whose answer was lost or whose key rotation was cut
    // short: what is left to do is to replace the keys.
    if ((err as SedfsError).code !== 'SEDFS_ERR_NOT_FOUND') throw err;
    const { rotations } = await fs.client.call<RotationsResponse>('GET', '/v1/rotations');
    if (rotations.length === 0) throw err;
    const done = await finishRotations(fs, opts);
    return { nodes: done.reduce((n, r) => n + r.nodes, 0), sharesInside: 0 };
  }
  const { rotation, stillHas, sharesInside } = answer;
  try {
    const { nodes } = await finishRotation(fs, rotation, opts);
    return { nodes, ...(stillHas ? { stillHas } : {}), sharesInside: sharesInside ?? 0 };
  } catch (err) {
    // Said as it is: a user who keeps access through a share above lost only this one.
    const revoked = stillHas
      ? `${user}'s share of ${node.path} is revoked (they can still ${stillHas} it through a share above),`
      : `${user}'s access to ${node.path} is revoked,`;
    throw unfinished(`${revoked} but`, err);
  }
}

/** Finishes every key rotation an unshare left unfinished in the caller's tree. */
export async function finishRotations(
  fs: FileSystem,
  opts: RekeyOptions = {},
): Promise<{ path: string; nodes: number }[]> {
  const { rotations } = await fs.client.call<RotationsResponse>('GET', '/v1/rotations');
  const done: { path: string; nodes: number }[] = [];
  for (const r of rotations) {
    try {
      done.push(await finishRotation(fs, r.nodeId, opts));
    } catch (err) {
      throw unfinished(done.length > 0 ? `${done.length} rotation(s) finished, but` : '', err);
    }
  }
  return done;
}

function unfinished(before: string, err: unknown): SedfsError {
  const why = err instanceof Error ? err.message : String(err);
  return new SedfsError(
    'SEDFS_ERR_REKEY_PENDING',
    `${before ? `${before} r` : 'R'}eplacing the keys did not finish (${why}). Until it does, main refuses changes there; finish it with: sedfs unshare --finish`,
    undefined,
    { cause: err },
  );
}

const REKEY_ATTEMPTS = 3;
const PART_BYTES = 8 * 1024 * 1024;

/** Replaces every key under a node whose rotation is pending; the node as its owner sees it. */
async function finishRotation(
  fs: FileSystem,
  rootId: string,
  opts: RekeyOptions,
): Promise<{ path: string; nodes: number }> {
  const { node, parentKey } = await openOwn(fs, rootId);
  // Main refuses a re-key of a subtree that changed after it was read (a grant given or
  // taken, a node moved away by someone above it): read it again and re-key that.
  const nodes = await retryOnConflict(REKEY_ATTEMPTS, () => rekey(fs, node, parentKey, opts));
  return { path: node.path, nodes };
}

/**
 * One of the caller's own nodes by id, its key opened down from the home folder, with
 * its parent's key (a rotation's root keeps its parent).
 */
async function openOwn(fs: FileSystem, id: string): Promise<{ node: OpenNode; parentKey: Buffer }> {
  const chain: NodeEntry[] = [];
  for (let cur: string | null = id; cur !== null; ) {
    const e: NodeEntry = await fs.client.call<NodeEntry>('GET', `/v1/nodes/${cur}`);
    chain.unshift(e);
    cur = e.parentId;
  }
  const home = await fs.resolve('/');
  if (chain[0]?.id !== home.entry.id)
    throw new SedfsError('SEDFS_ERR_FORBIDDEN', 'only the owner may replace the keys of a folder');
  let key = home.key;
  let parentKey = home.key;
  const names: string[] = [];
  for (const e of chain.slice(1)) {
    parentKey = key;
    key = unwrapNodeKey(parentKey, e.id, e.wrappedKey as string);
    names.push(decryptName(parentKey, e.parentId as string, e.id, e.nameEnc as string));
  }
  const entry = chain[chain.length - 1] as NodeEntry;
  return { node: { entry, key, name: names[names.length - 1] ?? '', path: joinPath(names) }, parentKey };
}

/** One attempt at a rotation: the subtree as it is now, every key in it replaced, sent in parts. */
async function rekey(fs: FileSystem, node: OpenNode, parentKey: Buffer, opts: RekeyOptions): Promise<number> {
  const tree = await fs.client.call<SubtreeResponse>('GET', `/v1/nodes/${node.entry.id}/subtree`);
  const byId = new Map(tree.nodes.map((n) => [n.id, n]));
  const oldKey = new Map<string, Buffer>([[node.entry.id, node.key]]);
  const newKey = new Map<string, Buffer>();
  const out: RekeyRequest['nodes'] = [];
  const names: { entry: RekeyRequest['nodes'][number]; parentId: string; name: string; readable: boolean }[] =
    [];
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
    const parentOld = isRoot ? parentKey : oldKey.get(n.parentId as string);
    const parentNew = isRoot ? parentKey : (newKey.get(n.parentId as string) as Buffer);
    const own = isRoot
      ? node.key
      : parentOld && opened(() => unwrapNodeKey(parentOld, id, n.wrappedKey as string));
    if (own) oldKey.set(id, own);
    const entry: RekeyRequest['nodes'][number] = {
      id,
      wrappedKey: wrapNodeKey(parentNew, id, key),
      // Main refuses the re-key if the node was moved or renamed since it was read here.
      ...(n.wrappedKey ? { expectWrappedKey: n.wrappedKey } : {}),
    };
    if (!isRoot) names.push({ entry, parentId: n.parentId as string, ...rekeyedName(parentOld, n) });
    if (n.versionId && n.contentKey) {
      const versionId = n.versionId;
      const contentKey = n.contentKey;
      const ck = own && opened(() => unwrapContentKey(own, versionId, contentKey));
      entry.contentKey = wrapContentKey(key, versionId, ck ?? newNodeKey());
      entry.versionId = versionId;
    }
    out.push(entry);
  }
  // Each folder's readable names first (main keeps them unique already), then the
  // names given to entries that had none readable, each one not yet taken there: a
  // writer can store any name, "unreadable name ID" of another entry included.
  const taken = new Map<string, Set<string>>();
  const takenIn = (parentId: string): Set<string> => {
    const used = taken.get(parentId) ?? new Set<string>();
    taken.set(parentId, used);
    return used;
  };
  for (const n of names) if (n.readable) takenIn(n.parentId).add(n.name.normalize('NFC'));
  for (const n of names) {
    if (n.readable) continue;
    const used = takenIn(n.parentId);
    let name = n.name;
    for (let k = 2; used.has(name.normalize('NFC')); k++) name = fitName(n.name, ` (${k})`);
    used.add(name.normalize('NFC'));
    n.name = name;
  }
  for (const n of names) {
    const parentNew = newKey.get(n.parentId) as Buffer;
    n.entry.nameEnc = encryptName(parentNew, n.parentId, n.entry.id, n.name);
    n.entry.nameMac = nameMac(parentNew, n.name);
  }
  const grants = tree.grants.map((g) => ({
    nodeId: g.nodeId,
    granteeId: g.granteeId,
    sealedKey: sealTo(g.boxKey, newKey.get(g.nodeId) as Buffer, grantKeyContext(g.nodeId)).toString(
      'base64url',
    ),
  }));
  return sendInParts(fs, node.entry.id, out, grants, opts.partBytes ?? PART_BYTES);
}

/**
 * The new keys in parts of at most `partBytes` of JSON (and REKEY_PART_MAX items), under
 * one fresh attempt id; main keeps them until the last, which installs them all.
 */
async function sendInParts(
  fs: FileSystem,
  rootId: string,
  nodes: RekeyRequest['nodes'],
  grants: RekeyRequest['grants'],
  partBytes: number,
): Promise<number> {
  const attempt = randomHexId();
  let part: Pick<RekeyRequest, 'nodes' | 'grants'> = { nodes: [], grants: [] };
  let bytes = 0;
  const send = async (done: boolean) => {
    const body = { attempt, done, ...part };
    // Main reads only so many big bodies at once: a part it refused as busy is sent again.
    const res = await retryWhileBusy(() =>
      fs.client.call<RekeyResponse>('POST', `/v1/nodes/${rootId}/rekey`, body),
    );
    part = { nodes: [], grants: [] };
    bytes = 0;
    return res;
  };
  const items = [...nodes.map((n) => ['nodes', n] as const), ...grants.map((g) => ['grants', g] as const)];
  for (const [kind, item] of items) {
    const size = JSON.stringify(item).length + 1;
    if (bytes > 0 && (bytes + size > partBytes || part[kind].length >= REKEY_PART_MAX)) await send(false);
    (part[kind] as object[]).push(item);
    bytes += size;
  }
  return (await send(true)).nodes ?? nodes.length;
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
 * The name an entry keeps through a re-key: its own (`readable`), unless it does not
 * decrypt (or its parent's key did not open), or is not the name its MAC was made from
 * (a writer can store such an entry; listings leave it out). Those get a name that says
 * so, with the node's whole id, so the owner can see and remove them; `rekey` makes sure
 * no two in a folder are the same.
 */
function rekeyedName(
  parentKey: Buffer | undefined,
  n: SubtreeResponse['nodes'][number],
): { name: string; readable: boolean } {
  const unreadable = { name: `unreadable name ${n.id}`, readable: false };
  if (!parentKey) return unreadable;
  let name: string;
  try {
    name = decryptName(parentKey, n.parentId as string, n.id, n.nameEnc as string);
  } catch {
    return unreadable;
  }
  if (nameMac(parentKey, name) === n.nameMac) return { name, readable: true };
  return { name: fitName(name, ` (conflict ${n.id})`), readable: false };
}

/** `name` and `suffix`, the name cut short (by whole characters) so both fit in 255 bytes. */
function fitName(name: string, suffix: string): string {
  const room = 255 - Buffer.byteLength(suffix);
  let base = '';
  for (const ch of name) {
    if (Buffer.byteLength(base + ch) > room) break;
    base += ch;
  }
  return base + suffix;
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
