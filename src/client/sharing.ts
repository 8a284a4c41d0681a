import { setTimeout as sleep } from 'node:timers/promises';
import { retryWhileBusy } from '../common/retry.js';
import { signGrant } from '../crypto/grant-signature.js';
import { randomHexId } from '../crypto/hash.js';
import { sealTo } from '../crypto/identity.js';
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
import { REKEY_PART_MAX } from '../protocol/limits.js';
import type {
  LockResponse,
  NodeEntry,
  PermsResponse,
  RekeyRequest,
  RekeyResponse,
  RotationsResponse,
  SubtreeResponse,
  UnshareResponse,
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
import { checkedUserKeys, type KeyCheck, type PinStore } from './pins.js';

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
  const keys = await checkedUserKeys(fs.client, pins, user, opts.acceptNewKey);
  const nodeId = node.entry.id;
  const { nodeId: _, ...grant } = signedGrant(fs, keys.boxKey, nodeId, node.key, node.name);
  await fs.client.call('POST', `/v1/nodes/${nodeId}/grants`, {
    grantee: keys.id,
    perm,
    ...grant,
    ...keyWitness('expectWrappedKey', node),
  });
  return keys;
}

/**
 * A node's key and name sealed to a grantee's box key, dated now by this clock (never a
 * time main supplies: a date far ahead would stand above every later grant) and signed
 * with the owner's key: what a grantee opens (see grant-signature.ts).
 */
function signedGrant(fs: FileSystem, boxKey: string, nodeId: string, key: Buffer, name: string) {
  const grant = {
    nodeId,
    sealedKey: sealTo(boxKey, key, grantKeyContext(nodeId)).toString('base64url'),
    sealedName: sealTo(boxKey, Buffer.from(name, 'utf8'), grantNameContext(nodeId)).toString('base64url'),
    signedAt: Date.now(),
  };
  return { ...grant, signature: signGrant(fs.identity, grant) };
}

export interface RekeyOptions {
  /** bytes of JSON at most in one part of the new keys (main takes up to 16 MiB) */
  partBytes?: number;
  /** nodes at most in one page of the subtree read (main answers SUBTREE_PAGE at most) */
  pageNodes?: number;
  /** how often to look at another client's attempt at the rotation, waiting for it (ms) */
  pollMs?: number;
  /** how long another client's attempt may send no part before it is taken over (ms; stallLimitMs) */
  stallMs?: number;
  /** users whose key changed since it was pinned, confirmed by the owner (`--accept-new-key`) */
  acceptNewKeys?: readonly string[];
  /** told what the owner should know while it goes on: a key pinned for the first time */
  onNotice?: (message: string) => void;
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
  pins: PinStore,
  path: string,
  user: string,
  cwd = '/',
  opts: RekeyOptions = {},
): Promise<Pick<RotationDone, 'nodes' | 'byAnother'> & Pick<UnshareResponse, 'stillHas' | 'sharesInside'>> {
  const node = await ownNode(fs, path, cwd);
  const target = await fs.client.call<UserKeysResponse>('GET', `/v1/users/${encodeURIComponent(user)}`);
  const keys = new GranteeKeys(fs, pins, opts);
  let answer: UnshareResponse;
  try {
    answer = await fs.client.call<UnshareResponse>('POST', `/v1/nodes/${node.entry.id}/unshare`, {
      grantee: target.id,
    });
  } catch (err) {
    // Revoked already, by an unshare of this node whose answer was lost or whose key
    // rotation was cut short: what is left to do is to replace the keys. That rotation is
    // pending at the node or a folder above it (main answers an unshare with the one
    // above when there is one); any other pending rotation says nothing about this user
    // here, and finishing it would report a revocation that never happened.
    if ((err as SedfsError).code !== 'SEDFS_ERR_NOT_FOUND') throw err;
    const { rotations } = await fs.client.call<RotationsResponse>('GET', '/v1/rotations');
    const above = await idsUpFrom(fs, node.entry);
    const here = rotations.filter((r) => above.has(r.nodeId));
    if (here.length === 0)
      throw new SedfsError('SEDFS_ERR_NOT_FOUND', `${user} has no share on ${node.path}`, undefined, {
        cause: err,
      });
    const done: RotationDone[] = [];
    try {
      for (const r of here) done.push(await finishRotation(fs, keys, r.nodeId, opts));
    } catch (e) {
      throw unfinished('', e);
    }
    return {
      nodes: done.reduce((n, r) => n + r.nodes, 0),
      ...(done.every((r) => r.byAnother) ? { byAnother: true } : {}),
      sharesInside: 0,
    };
  }
  const { rotation, stillHas, sharesInside } = answer;
  try {
    const { nodes, byAnother } = await finishRotation(fs, keys, rotation, opts);
    return {
      nodes,
      ...(byAnother ? { byAnother } : {}),
      ...(stillHas ? { stillHas } : {}),
      sharesInside: sharesInside ?? 0,
    };
  } catch (err) {
    // Said as it is: a user who keeps access through a share above lost only this one.
    const revoked = stillHas
      ? `${user}'s share of ${node.path} is revoked (they can still ${stillHas} it through a share above),`
      : `${user}'s access to ${node.path} is revoked,`;
    throw unfinished(`${revoked} but`, err);
  }
}

/** The ids of a node and of every folder above it, up to the home folder. */
async function idsUpFrom(fs: FileSystem, entry: NodeEntry): Promise<Set<string>> {
  const ids = new Set([entry.id]);
  for (let cur = entry.parentId; cur !== null; ) {
    ids.add(cur);
    cur = (await fs.client.call<NodeEntry>('GET', `/v1/nodes/${cur}`)).parentId;
  }
  return ids;
}

/** Finishes every key rotation an unshare left unfinished in the caller's tree. */
export async function finishRotations(
  fs: FileSystem,
  pins: PinStore,
  opts: RekeyOptions = {},
): Promise<RotationDone[]> {
  const { rotations } = await fs.client.call<RotationsResponse>('GET', '/v1/rotations');
  const keys = new GranteeKeys(fs, pins, opts);
  const done: RotationDone[] = [];
  for (const r of rotations) {
    try {
      done.push(await finishRotation(fs, keys, r.nodeId, opts));
    } catch (err) {
      throw unfinished(done.length > 0 ? `${done.length} rotation(s) finished, but` : '', err);
    }
  }
  return done;
}

function unfinished(before: string, err: unknown): SedfsError {
  const why = err instanceof Error ? err.message : String(err);
  const start = `${before ? `${before} r` : 'R'}eplacing the keys did not finish`;
  // Kept as it is: the owner decides about a changed key (the message says how), and
  // finishing again without deciding meets the same key.
  if (err instanceof SedfsError && err.code === 'SEDFS_ERR_KEY_CHANGED')
    return new SedfsError(
      'SEDFS_ERR_KEY_CHANGED',
      `${start}, and main refuses changes there until it does: ${why}`,
      undefined,
      { cause: err },
    );
  return new SedfsError(
    'SEDFS_ERR_REKEY_PENDING',
    `${start} (${why}). Until it does, main refuses changes there; finish it with: sedfs unshare --finish`,
    undefined,
    { cause: err },
  );
}

const REKEY_ATTEMPTS = 3;
const PART_BYTES = 8 * 1024 * 1024;
const POLL_MS = 500;

/**
 * How long another client's attempt at a rotation may send no part before it is taken
 * over: longer than one part can take while that client is there, or two clients on slow
 * links take it from each other for ever. Main gives a part's body 60 s plus its size at
 * 256 KiB/s (src/main-server/body-budget.ts), and a part refused as busy is sent again
 * over 60–100 s (retryWhileBusy): 5 minutes at ~8 MiB parts (the other client's size is
 * not known here: taken as the default at least).
 */
export function stallLimitMs(partBytes = PART_BYTES): number {
  const bytes = Math.max(partBytes, PART_BYTES);
  return Math.max(5 * 60_000, 60_000 + Math.ceil((bytes / (256 * 1024)) * 1000) + 80_000);
}

/** A rotation finished: how many nodes got new keys, or that another client finished it. */
export interface RotationDone {
  path: string;
  nodes: number;
  /** another client (another `sedfs unshare` of the same owner) installed the new keys */
  byAnother?: true;
}

type PendingRotation = RotationsResponse['rotations'][number];

/** The rotation pending at `rootId`, or undefined once it is finished (or its node removed). */
/** How long the last part of a rotation may wait for main's answer: its install, in steps. */
const INSTALL_SILENCE_MS = 10 * 60_000;

async function pendingAt(fs: FileSystem, rootId: string): Promise<PendingRotation | undefined> {
  const { rotations } = await fs.client.call<RotationsResponse>('GET', '/v1/rotations');
  return rotations.find((r) => r.nodeId === rootId);
}

/**
 * Replaces every key under a node whose rotation is pending; the node as its owner sees
 * it. Another client may be at it too (an inner unshare beside `unshare --finish`, or
 * one whose client was lost): an attempt that has sent parts is taken over only once it
 * has sent none for the stall limit, and then only from the attempt seen (compare and
 * set); one taken over from waits the same way for the other to finish.
 */
async function finishRotation(
  fs: FileSystem,
  keys: GranteeKeys,
  rootId: string,
  opts: RekeyOptions,
): Promise<RotationDone> {
  const { node, parentKey } = await openOwn(fs, rootId);
  const byAnother: RotationDone = { path: node.path, nodes: 0, byAnother: true };
  /** this client's attempts: one of them found pending is taken over at once (a conflict's retry) */
  const mine = new Set<string>();
  /** another attempt as it was when it had sent nothing for the stall limit */
  let stalled: PendingRotation | undefined;
  let told = false;
  for (let conflicts = 1; ; ) {
    const pending = await pendingAt(fs, rootId);
    if (!pending) return byAnother;
    const theirs = pending.attempt !== null && !mine.has(pending.attempt);
    if (theirs && !(stalled?.attempt === pending.attempt && stalled.parts === pending.parts)) {
      if (!told) {
        const limit = Math.ceil((opts.stallMs ?? stallLimitMs(opts.partBytes)) / 1000);
        opts.onNotice?.(
          pending.installing
            ? `waiting for main to install the new keys under ${node.path}…`
            : `waiting for another unshare finishing the keys under ${node.path}… (taken over if it sends nothing for ${limit} s)`,
        );
      }
      told = true;
      stalled = await whileOtherAttemptGoesOn(fs, rootId, opts);
      if (!stalled) return byAnother;
      continue;
    }
    const attempt = randomHexId();
    mine.add(attempt);
    try {
      return {
        path: node.path,
        nodes: await rekey(fs, keys, node, parentKey, attempt, pending.attempt, opts),
      };
    } catch (err) {
      const code = err instanceof SedfsError ? err.code : undefined;
      // Main refuses a re-key of a subtree that changed after it was read (a grant taken
      // inside, a node moved away by someone above it): read it again and re-key that.
      if (code === 'SEDFS_ERR_VERSION_CONFLICT' && conflicts < REKEY_ATTEMPTS) {
        await sleep(Math.random() * 50 * conflicts++);
        continue;
      }
      // Another client took it over: waited for above, as it now is another's attempt.
      if (code === 'SEDFS_ERR_REKEY_TAKEN_OVER') continue;
      // No rotation pending there any more: another client finished it, or it was removed.
      if (code === 'SEDFS_ERR_NOT_FOUND' && !(await pendingAt(fs, rootId))) return byAnother;
      throw err;
    }
  }
}

/**
 * Waits while another client's attempt at the rotation sends parts: until the rotation
 * is finished (undefined), or no attempt is under way, or the one under way sent none for
 * the stall limit (its client is gone): the rotation as it was then, to take it over.
 */
async function whileOtherAttemptGoesOn(
  fs: FileSystem,
  rootId: string,
  opts: RekeyOptions,
): Promise<PendingRotation | undefined> {
  const limit = opts.stallMs ?? stallLimitMs(opts.partBytes);
  let seen = await pendingAt(fs, rootId);
  let since = Date.now();
  while (seen && seen.attempt !== null) {
    await sleep(opts.pollMs ?? POLL_MS);
    const now = await pendingAt(fs, rootId);
    if (!now) return undefined;
    // Being installed, it ends by itself however long that takes: never stalled.
    if (now.installing || now.attempt !== seen.attempt || now.parts !== seen.parts) since = Date.now();
    else if (Date.now() - since >= limit) return now;
    seen = now;
  }
  return seen;
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

/** A folder above the entry being re-keyed: its keys, and the fallback names given in it. */
interface OpenFolder {
  id: string;
  /** undefined if its key did not open (see opened()) */
  oldKey: Buffer | undefined;
  newKey: Buffer;
  /** NFC forms of the names given here to entries without a readable one */
  fallbacks: Set<string>;
}

/**
 * One attempt at a rotation: the subtree as it is now, read a page at a time, every key in
 * it replaced and sent in parts as they fill. The pages come in pre-order (a folder before
 * what is in it), so only the keys of the folders above the entry at hand are kept: a
 * subtree of any size takes a page, a part and its depth of memory.
 */
async function rekey(
  fs: FileSystem,
  keys: GranteeKeys,
  node: OpenNode,
  parentKey: Buffer,
  attempt: string,
  replacing: string | null,
  opts: RekeyOptions,
): Promise<number> {
  const rootId = node.entry.id;
  const parts = new RekeyParts(fs, rootId, attempt, replacing, opts.partBytes ?? PART_BYTES);
  /** the folders above the next entry, the subtree's root first */
  const above: OpenFolder[] = [];
  let count = 0;
  let after: string | undefined;
  do {
    const query = new URLSearchParams({
      ...(after ? { after } : {}),
      ...(opts.pageNodes ? { limit: String(opts.pageNodes) } : {}),
    }).toString();
    const page = await fs.client.call<SubtreeResponse>(
      'GET',
      `/v1/nodes/${rootId}/subtree${query ? `?${query}` : ''}`,
    );
    // Before any key of the page is sealed to a grantee, and so before any part holding one goes.
    await keys.check(page.grants, node.path);
    const grantsOf = new Map<string, SubtreeResponse['grants']>();
    for (const g of page.grants) grantsOf.set(g.nodeId, [...(grantsOf.get(g.nodeId) ?? []), g]);
    for (const n of page.nodes) {
      const key = newNodeKey();
      let own: Buffer | undefined;
      let entry: RekeyRequest['nodes'][number];
      /** the node's name as it is kept: sealed afresh to its grantees, not taken from main */
      let name: string;
      if (count === 0) {
        if (n.id !== rootId) throw pagesOutOfOrder();
        own = node.key;
        name = node.name;
        entry = { id: n.id, wrappedKey: wrapNodeKey(parentKey, n.id, key) };
      } else {
        while (above.length > 0 && above[above.length - 1]?.id !== n.parentId) above.pop();
        const parent = above[above.length - 1];
        if (!parent) throw pagesOutOfOrder();
        const parentOld = parent.oldKey;
        // Undefined below a node whose key does not open (see opened()).
        own = parentOld && opened(() => unwrapNodeKey(parentOld, n.id, n.wrappedKey as string));
        name = await keptName(fs, parent, n);
        entry = {
          id: n.id,
          wrappedKey: wrapNodeKey(parent.newKey, n.id, key),
          nameEnc: encryptName(parent.newKey, parent.id, n.id, name),
          nameMac: nameMac(parent.newKey, name),
        };
      }
      // Main refuses the re-key if the node was moved or renamed since it was read here.
      if (n.wrappedKey) entry.expectWrappedKey = n.wrappedKey;
      if (n.versionId && n.contentKey) {
        const versionId = n.versionId;
        const contentKey = n.contentKey;
        const ck = own && opened(() => unwrapContentKey(own, versionId, contentKey));
        entry.contentKey = wrapContentKey(key, versionId, ck ?? newNodeKey());
        entry.versionId = versionId;
      }
      await parts.add('nodes', entry);
      for (const g of grantsOf.get(n.id) ?? []) {
        // Signed again, since the grantee opens only what its owner signed, over a name
        // sealed here (main's copy of the old one would be signed unseen: main could have
        // had another name shown), and dated after the grant it replaces, which the
        // grantee then refuses.
        await parts.add('grants', {
          ...signedGrant(fs, g.boxKey, g.nodeId, key, name),
          granteeId: g.granteeId,
        });
      }
      if (n.kind === 'dir') above.push({ id: n.id, oldKey: own, newKey: key, fallbacks: new Set() });
      count++;
    }
    after = page.next;
  } while (after);
  return (await parts.finish()) ?? count;
}

/**
 * The keys a rotation re-seals the new node keys to, checked against the owner's pins as
 * `share` checks them, so a main that swaps a grantee's key is noticed here too. A
 * subtree page names a grantee by id only, with the box key main has for it; pins are
 * kept by user name, so the names of the grants on a node come from its perms, and each
 * name's keys from `checkedUserKeys` (pinned if first seen, refused if changed). Each
 * grantee is checked once per run.
 */
class GranteeKeys {
  /** box key by grantee id, as checked against the pins */
  private readonly boxKeys = new Map<string, string>();
  private readonly names = new Map<string, string>();
  /** users whose keys were read already */
  private readonly read = new Set<string>();
  private readonly accept: ReadonlySet<string>;

  constructor(
    private readonly fs: FileSystem,
    private readonly pins: PinStore,
    private readonly opts: Pick<RekeyOptions, 'acceptNewKeys' | 'onNotice'>,
  ) {
    this.accept = new Set(opts.acceptNewKeys ?? []);
  }

  /** Refuses (SEDFS_ERR_KEY_CHANGED) a grant whose key is not its grantee's pinned one. */
  async check(grants: SubtreeResponse['grants'], path: string): Promise<void> {
    for (const g of grants) {
      if (!this.boxKeys.has(g.granteeId)) await this.readGrantsOn(g.nodeId, path);
      const checked = this.boxKeys.get(g.granteeId);
      // Main named nobody with this id on the node: it changed since the page was read.
      if (checked === undefined)
        throw new SedfsError(
          'SEDFS_ERR_VERSION_CONFLICT',
          'a grant in the shared folder changed while it was read',
        );
      if (checked !== g.boxKey) {
        const user = this.names.get(g.granteeId) ?? g.granteeId;
        throw new SedfsError(
          'SEDFS_ERR_KEY_CHANGED',
          `WARNING: main gave a key for ${user} other than their pinned one, to re-seal the keys under ${path} to; someone may be impersonating them. Nothing was sealed to it.`,
        );
      }
    }
  }

  private async readGrantsOn(nodeId: string, path: string): Promise<void> {
    const perms = await this.fs.client.call<PermsResponse>('GET', `/v1/nodes/${nodeId}/perms`);
    for (const { user, inherited } of perms.grants) {
      if (inherited || this.read.has(user)) continue;
      // Nothing is sealed to a changed key: the rotation stops before this page's keys.
      const keys = await checkedUserKeys(
        this.fs.client,
        this.pins,
        user,
        this.accept.has(user),
        `finish with: sedfs unshare --finish --accept-new-key ${user}`,
      );
      if (keys.newlyPinned)
        this.opts.onNotice?.(
          `pinned ${user}'s key: fingerprint ${keys.fingerprint} (they keep a share under ${path})`,
        );
      this.read.add(user);
      this.names.set(keys.id, user);
      this.boxKeys.set(keys.id, keys.boxKey);
    }
  }
}

/** A page whose entry's folder was not on the way to it: the subtree changed between pages. */
function pagesOutOfOrder(): SedfsError {
  return new SedfsError('SEDFS_ERR_VERSION_CONFLICT', 'the shared folder changed while it was read');
}

/**
 * The name an entry gets under its folder's new key: its own if readable, else a name
 * that says so (rekeyedName), made distinct from every name kept in the folder. Readable
 * names are distinct already (main keeps their MACs unique); a writer can store any name,
 * "unreadable name ID" of another entry included, so a fallback name is looked up by its
 * MAC under the folder's old key (entries without a readable name are rare: planted).
 */
async function keptName(
  fs: FileSystem,
  folder: OpenFolder,
  n: SubtreeResponse['nodes'][number],
): Promise<string> {
  const { name, readable } = rekeyedName(folder.oldKey, n);
  if (readable) return name;
  for (let k = 1; ; k++) {
    const candidate = k === 1 ? name : fitName(name, ` (${k})`);
    const nfc = candidate.normalize('NFC');
    if (folder.fallbacks.has(nfc)) continue;
    if (folder.oldKey && (await takenByAnother(fs, folder.id, nameMac(folder.oldKey, candidate), n.id)))
      continue;
    folder.fallbacks.add(nfc);
    return candidate;
  }
}

/** Whether another entry of the folder is filed under this MAC. */
async function takenByAnother(fs: FileSystem, folderId: string, mac: string, self: string): Promise<boolean> {
  try {
    const found = await fs.client.call<NodeEntry>('GET', `/v1/nodes/${folderId}/children/${mac}`);
    return found.id !== self;
  } catch (err) {
    if (err instanceof SedfsError && err.code === 'SEDFS_ERR_NOT_FOUND') return false;
    throw err;
  }
}

/**
 * The new keys of one attempt, sent as parts of at most `partBytes` of JSON (and
 * REKEY_PART_MAX items) as they fill; main keeps them until the last, which installs
 * them all.
 */
class RekeyParts {
  private part: Pick<RekeyRequest, 'nodes' | 'grants'> = { nodes: [], grants: [] };
  private bytes = 0;

  constructor(
    private readonly fs: FileSystem,
    private readonly rootId: string,
    /** this attempt's id, random */
    private readonly attempt: string,
    /** the attempt this one takes over from, named in its first part (null: none began) */
    private replacing: string | null | undefined,
    private readonly partBytes: number,
  ) {}

  async add<K extends 'nodes' | 'grants'>(kind: K, item: RekeyRequest[K][number]): Promise<void> {
    const size = JSON.stringify(item).length + 1;
    if (this.bytes > 0 && (this.bytes + size > this.partBytes || this.part[kind].length >= REKEY_PART_MAX))
      await this.send(false);
    (this.part[kind] as object[]).push(item);
    this.bytes += size;
  }

  /** Sends the last part, which installs them all; how many nodes got new keys. */
  async finish(): Promise<number | undefined> {
    return (await this.send(true)).nodes;
  }

  private async send(done: boolean): Promise<RekeyResponse> {
    const body: RekeyRequest = { attempt: this.attempt, done, ...this.part };
    if (this.replacing !== undefined) body.replacing = this.replacing;
    this.replacing = undefined;
    this.part = { nodes: [], grants: [] };
    this.bytes = 0;
    // Main reads only so many big bodies at once: a part it refused as busy is sent again.
    // The last part is answered once main has installed every key, a step at a time
    // (seconds at 500,000 nodes): given longer than a call's usual minute of silence.
    const silence = done ? { headersTimeoutMs: INSTALL_SILENCE_MS } : {};
    return retryWhileBusy(() =>
      this.fs.client.call<RekeyResponse>('POST', `/v1/nodes/${this.rootId}/rekey`, body, silence),
    );
  }
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
 * so, with the node's whole id, so the owner can see and remove them; `keptName` makes sure
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
