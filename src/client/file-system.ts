import type { Writable } from 'node:stream';
import { inParallel } from '../common/parallel.js';
import { ChunkSealer, openChunk } from '../crypto/content.js';
import { grantSignedBy } from '../crypto/grant-signature.js';
import { randomHexId, sha256Hex } from '../crypto/hash.js';
import { openSealed, type SecretIdentity } from '../crypto/identity.js';
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
import type { MeResponse } from '../protocol/account-api.js';
import { isErrorCode, SedfsError } from '../protocol/errors.js';
import type { PutBatchResponse, PutChunkResponse, StoredReceipt } from '../protocol/file-server-api.js';
import { CONTENTS_MAX, GRANT_DATE_AHEAD_MS } from '../protocol/limits.js';
import type { Placement } from '../protocol/main-api.js';
import type {
  ChildrenResponse,
  ContentResponse,
  ContentsResponse,
  NodeEntry,
  ShareEntry,
  VersionCommit,
} from '../protocol/namespace-api.js';
import { me as fetchMe, type RootPin, rootPinOf, rootSealContext } from './account.js';
import type { ByteSource } from './chunker.js';
import type { ClusterClient } from './cluster-client.js';
import { fetchChunks } from './fetch-blob.js';
import { ManifestPager } from './manifest-pager.js';
import { compareNames } from './name-order.js';
import {
  checkName,
  checkStoredName,
  childPath,
  joinPath,
  namesFolder,
  notAFolder,
  splitPath,
} from './paths.js';
import { checkedUserKeys, MemoryPins, type PinStore } from './pins.js';
import { sealWorkers } from './seal-workers.js';
import { DEFAULT_CHUNK_BYTES, OtherServers, sendBatch, sendChunk, storeChunks } from './store-blob.js';

/** A node with its key opened on the client and its name decrypted. */
export interface OpenNode {
  entry: NodeEntry;
  key: Buffer;
  name: string;
  /** the /shared view's folders, which exist only on the client */
  virtual?: 'shared' | 'owner';
  /** path from the home folder */
  path: string;
}

/** What looking a name up in a folder needs of the folder. */
interface LookupParent {
  entry: Pick<NodeEntry, 'id' | 'kind'>;
  key: Buffer;
  path: string;
}

export interface ListedEntry {
  name: string;
  kind: 'dir' | 'file';
  size: number;
  modifiedAt: number;
  id: string;
}

export interface TransferOptions {
  onProgress?: (bytesDone: number) => void;
  /** gets: makes the buffers chunks are received into (a file writer's, see FetchOptions) */
  buffers?: (size: number) => Buffer;
  onWarning?: (message: string) => void;
  chunkBytes?: number;
  replicas?: number;
  /** gets: the file's content as `contents` answered it, so `get` does not ask again */
  content?: ContentResponse;
  /**
   * puts: the version the new one replaces (null: the file must not exist yet); the put
   * fails with SEDFS_ERR_VERSION_CONFLICT if another has landed since (`write --append`)
   */
  expectVersionId?: string | null;
}

/** How long a commit waits, try after try, for an unshare to finish replacing keys: ~3 s in all. */
const ROTATION_WAITS_MS = [200, 400, 800, 1600];

/**
 * Runs `commit` after each wait while main answers that an unshare is replacing the keys
 * there (SEDFS_ERR_REKEY_PENDING); its last answer stands. One left unfinished (its
 * owner's client gone) is refused with how to finish it.
 */
async function afterRotation<T>(commit: () => Promise<T>): Promise<T> {
  let last: unknown;
  for (const ms of ROTATION_WAITS_MS) {
    await new Promise((r) => setTimeout(r, ms));
    try {
      return await commit();
    } catch (err) {
      if ((err as SedfsError).code !== 'SEDFS_ERR_REKEY_PENDING') throw err;
      last = err;
    }
  }
  throw last;
}

/**
 * The encrypted file system as a user sees it. Every name and key is opened here, on
 * the client; main only ever receives ciphertext, MACs and ids.
 */
export class FileSystem {
  private constructor(
    readonly client: ClusterClient,
    readonly identity: SecretIdentity,
    readonly user: MeResponse,
    private readonly rootKey: Buffer,
    /** other users' keys as first seen: a share opens only if its owner's pinned key signed it */
    private readonly pins: PinStore,
  ) {}

  /** Hears of folder entries and shares left out of listings because they do not open. */
  onSkipped?: (message: string) => void;
  /** Hears what the user should know while a command goes on: a share's owner pinned for the first time. */
  onNotice?: (message: string) => void;
  /** each share owner's signing key as checked against the pins */
  private readonly ownerKeys = new Map<string, string>();

  /**
   * Opens the signed-in user's home folder: its key is sealed to their X25519 key. With
   * `root`, the home folder must be the one pinned (see RootPin), else nothing is opened.
   */
  static async open(
    client: ClusterClient,
    identity: SecretIdentity,
    opts: { root?: RootPin; pins?: PinStore } = {},
  ): Promise<FileSystem> {
    const user = await fetchMe(client);
    if (user.boxKey !== identity.boxKey) {
      throw new SedfsError(
        'SEDFS_ERR_DECRYPT',
        'the keys in this profile are not the ones main has for this user',
      );
    }
    const root = rootPinOf(user.rootId, user.rootSealed);
    if (opts.root && (opts.root.id !== root.id || opts.root.sealed !== root.sealed)) {
      throw new SedfsError(
        'SEDFS_ERR_UNTRUSTED_SERVER',
        `main gave ${user.name} a home folder other than the one this profile opened there before (${opts.root.id.slice(0, 8)}…, now ${root.id.slice(0, 8)}…): its keys could be main's own, so nothing was read or written. A main that is really yours never changes it, not even restored from a backup`,
      );
    }
    const rootKey = openSealed(
      identity,
      Buffer.from(user.rootSealed, 'base64url'),
      rootSealContext(user.rootId),
    );
    return new FileSystem(client, identity, user, rootKey, opts.pins ?? new MemoryPins());
  }

  private async rootNode(): Promise<OpenNode> {
    const entry = await this.client.call<NodeEntry>('GET', `/v1/nodes/${this.user.rootId}`);
    return { entry, key: this.rootKey, name: '', path: '/' };
  }

  /**
   * The home folder as a place to look names up in: its id and key come with the
   * session, so a path below it costs no request for the home folder's own entry.
   */
  private home(): LookupParent {
    return { entry: { id: this.user.rootId, kind: 'dir' }, key: this.rootKey, path: '/' };
  }

  private async child(parent: OpenNode | LookupParent, name: string): Promise<OpenNode | undefined> {
    if (parent.path === '/' && name === SHARED) return virtualNode('shared', SHARED, `/${SHARED}`);
    if ('virtual' in parent && parent.virtual)
      return (await this.childrenOf(parent)).find((c) => c.name === name);
    if (parent.entry.kind !== 'dir') {
      throw new SedfsError('SEDFS_ERR_NOT_A_FOLDER', `${parent.path} is a file, not a folder`);
    }
    const mac = nameMac(parent.key, name);
    let entry: NodeEntry;
    try {
      entry = await this.client.call<NodeEntry>('GET', `/v1/nodes/${parent.entry.id}/children/${mac}`);
    } catch (err) {
      if (err instanceof SedfsError && err.code === 'SEDFS_ERR_NOT_FOUND') return undefined;
      throw err;
    }
    return this.openChild(parent, entry, name);
  }

  /**
   * Opens a child entry: its key, and its name, which must be the one its MAC was made
   * from (and the one looked up, for a lookup). Main only keeps MACs unique, so a writer
   * of a shared folder could store a name with another name's MAC and show a second
   * "report.txt" beside the real one; such an entry, like one whose name or key does not
   * decrypt, is a bad entry (left out of listings, see leftOutUnless).
   */
  private openChild(parent: LookupParent, entry: NodeEntry, name?: string): OpenNode {
    let key: Buffer;
    try {
      key = unwrapNodeKey(parent.key, entry.id, entry.wrappedKey as string);
    } catch {
      throw new SedfsError('SEDFS_ERR_BAD_NAME', 'its key does not open');
    }
    let stored: string;
    try {
      stored = decryptName(parent.key, parent.entry.id, entry.id, entry.nameEnc as string);
    } catch {
      throw new SedfsError('SEDFS_ERR_BAD_NAME', 'its name does not decrypt');
    }
    if (
      nameMac(parent.key, stored) !== entry.nameMac ||
      (name !== undefined && stored !== name.normalize('NFC'))
    )
      throw new SedfsError('SEDFS_ERR_BAD_NAME', 'its name is not the one it is filed under');
    const plainName = checkStoredName(stored);
    return { entry, key, name: plainName, path: childPath(parent.path, plainName) };
  }

  /** Resolves a path; `undefined` if the last name does not exist, an error if a folder on the way does not. */
  async find(path: string, cwd = '/'): Promise<OpenNode | undefined> {
    const names = splitPath(path, cwd);
    if (names.length === 0) return this.rootNode();
    let parent: OpenNode | LookupParent = this.home();
    for (let i = 0; ; i++) {
      const next = await this.child(parent, names[i] as string);
      if (i === names.length - 1) return next;
      if (!next)
        throw new SedfsError('SEDFS_ERR_NOT_FOUND', `no such folder: ${joinPath(names.slice(0, i + 1))}`);
      parent = next;
    }
  }

  async resolve(path: string, cwd = '/'): Promise<OpenNode> {
    const node = await this.find(path, cwd);
    if (!node)
      throw new SedfsError(
        'SEDFS_ERR_NOT_FOUND',
        `no such file or folder: ${joinPath(splitPath(path, cwd))}`,
      );
    return node;
  }

  /** `target` resolved, or as it is if it was resolved already (no second walk down the path). */
  async nodeOf(target: string | OpenNode, cwd = '/'): Promise<OpenNode> {
    return typeof target === 'string' ? this.resolve(target, cwd) : target;
  }

  async list(path: string, cwd = '/'): Promise<ListedEntry[]> {
    const dir = await this.resolve(path, cwd);
    if (dir.entry.kind !== 'dir') return [this.listed(dir)];
    return (await this.childrenOf(dir))
      .map((c) => this.listed(c))
      .sort((a, b) => compareNames(a.name, b.name));
  }

  /**
   * A folder's entries, opened. One whose stored name no SEDFS client writes (see
   * checkStoredName) is left out and told to `onSkipped`: a writer of a shared folder
   * could store one, and refusing the whole folder for it would lock everyone out of
   * the rest of it.
   */
  async childrenOf(dir: OpenNode): Promise<OpenNode[]> {
    if (dir.virtual) return this.sharedChildren(dir);
    const { entries } = await this.client.call<ChildrenResponse>('GET', `/v1/nodes/${dir.entry.id}/children`);
    const children = entries.flatMap((e) =>
      this.leftOutUnless(`${dir.path}: an entry (${e.id.slice(0, 8)})`, () => this.openChild(dir, e)),
    );
    if (dir.path === '/' && (await this.shares()).length > 0)
      children.push(virtualNode('shared', SHARED, `/${SHARED}`));
    return children;
  }

  /**
   * What others shared with this user, their keys and names opened with the user's X25519
   * key. Anyone can seal a key to anyone, main included, so each share must be signed by
   * its owner's key as pinned here (see grant-signature.ts), and signed no earlier than
   * the latest grant of it seen here (see `fresh`).
   */
  async shares(): Promise<(ShareEntry & { name: string; key: Buffer })[]> {
    const { shares } = await this.client.call<{ shares: ShareEntry[] }>('GET', '/v1/shares');
    const signKeys = new Map<string, string | SedfsError>();
    for (const owner of new Set(shares.map((s) => s.owner))) signKeys.set(owner, await this.ownerKey(owner));
    // A share that does not open, is not its owner's, or whose name is not valid is left
    // out, not allowed to break the listing of the home folder and of every other share.
    const checked = shares.map((s) => {
      try {
        return { s, opened: this.openShare(s, signKeys.get(s.owner)) };
      } catch (err) {
        return { s, failed: err };
      }
    });
    const signed = checked.flatMap((c) => (c.opened ? [c.opened] : []));
    const latest = signed.length > 0 ? await this.fresh(signed) : new Map<string, number>();
    return checked.flatMap(({ s, opened, failed }) =>
      this.leftOutUnless(`a share from ${s.owner}`, () => {
        if (!opened) throw failed;
        const newest = latest.get(opened.seenAs) ?? 0;
        if (opened.signedAt < newest)
          throw new SedfsError(
            'SEDFS_ERR_UNTRUSTED_SERVER',
            `main shows a grant of it signed ${dated(opened.signedAt)}, older than one seen here (signed ${dated(newest)}): main may be handing back keys an unshare replaced. If ${s.owner} shared it again from a computer whose clock is behind, or with a sedfs from before 2026-11-29's dated grants, ${s.owner} can share it again from one whose clock is right, with a current sedfs`,
          );
        return opened.shown;
      }),
    );
  }

  /** One share checked against its owner's key (or why it cannot be) and opened. */
  private openShare(
    s: ShareEntry,
    signKey: string | SedfsError | undefined,
  ): { shown: ShareEntry & { name: string; key: Buffer }; seenAs: string; signedAt: number } {
    if (signKey instanceof SedfsError) throw signKey;
    if (signKey === undefined) throw new Error(`no key was looked up for ${s.owner}`);
    if (!s.signature)
      throw new SedfsError(
        'SEDFS_ERR_UNTRUSTED_SERVER',
        `${s.owner} did not sign it (shares made before 2026-11-29 are not signed): ${s.owner} can share it again`,
      );
    if (!grantSignedBy(signKey, s, s.signature))
      throw new SedfsError(
        'SEDFS_ERR_UNTRUSTED_SERVER',
        `it is not signed by ${s.owner}'s key: someone other than ${s.owner}, main perhaps, made it`,
      );
    const signedAt = s.signedAt ?? 0;
    // A day of clocks' disagreement is allowed; further ahead, a grant would stand above
    // every later one of the owner's until then.
    if (signedAt > Date.now() + GRANT_DATE_AHEAD_MS)
      throw new SedfsError(
        'SEDFS_ERR_UNTRUSTED_SERVER',
        `it is dated ${dated(signedAt)}, ahead of this computer's clock: ${s.owner}'s clock (or this one's) is wrong`,
      );
    let key: Buffer;
    let name: Buffer;
    try {
      key = openSealed(this.identity, Buffer.from(s.sealedKey, 'base64url'), grantKeyContext(s.nodeId));
      name = openSealed(this.identity, Buffer.from(s.sealedName, 'base64url'), grantNameContext(s.nodeId));
    } catch (err) {
      if (!(err instanceof SedfsError) || err.code !== 'SEDFS_ERR_DECRYPT') throw err;
      throw new SedfsError('SEDFS_ERR_BAD_NAME', 'it does not open with your keys');
    }
    // By the owner's key as well as the node: a grant from a user main made up (pinned
    // as first seen) can stand above no grant of a real owner's.
    return {
      shown: { ...s, key, name: checkStoredName(name.toString('utf8')) },
      seenAs: `${signKey}:${s.nodeId}`,
      signedAt,
    };
  }

  /**
   * The latest grant of each share, by owner's key and node: the latest this user has
   * seen here before or sees in this listing, among grants signed by their owner;
   * remembered, so one signed earlier is refused from now on. After an unshare's
   * rotation, main could otherwise hand back the grant it replaced, with the tree from
   * before, so that what this user writes there lands under keys the revoked user knew.
   */
  private async fresh(signed: { seenAs: string; signedAt: number }[]): Promise<Map<string, number>> {
    // By this user's own signing key, from the profile: the user id is main's to say.
    const seen = await this.pins.grantsSeen(this.identity.signKey);
    const latest = new Map<string, number>(Object.entries(seen));
    const newer: Record<string, number> = {};
    for (const { seenAs, signedAt } of signed) {
      if (signedAt <= (latest.get(seenAs) ?? 0)) continue;
      latest.set(seenAs, signedAt);
      newer[seenAs] = signedAt;
    }
    if (Object.keys(newer).length > 0) await this.pins.saveGrantsSeen(this.identity.signKey, newer);
    return latest;
  }

  /**
   * A share owner's signing key, checked against the pins (pinned the first time, told
   * to onNotice), or why their shares cannot be trusted: their key changed since, or main
   * knows no such user. Only a key is kept (for as long as this FileSystem, a shell's
   * whole session): a failure is asked again next time, after a `pin` perhaps.
   */
  private async ownerKey(owner: string): Promise<string | SedfsError> {
    const known = this.ownerKeys.get(owner);
    if (known) return known;
    try {
      const k = await checkedUserKeys(
        this.client,
        this.pins,
        owner,
        false,
        `accept it with: sedfs pin ${owner} --accept-new-key`,
      );
      if (k.newlyPinned)
        this.onNotice?.(
          `pinned ${owner}'s key, who shares with you: fingerprint ${k.fingerprint} (compare it with what ${owner}'s sedfs whoami prints)`,
        );
      this.ownerKeys.set(owner, k.signKey);
      return k.signKey;
    } catch (err) {
      if (!(err instanceof SedfsError)) throw err;
      if (err.code === 'SEDFS_ERR_KEY_CHANGED') return err;
      if (err.code === 'SEDFS_ERR_NOT_FOUND')
        return new SedfsError(
          'SEDFS_ERR_UNTRUSTED_SERVER',
          `main knows no user ${owner} to check it against`,
        );
      throw err;
    }
  }

  /**
   * `[open()]`, or `[]` (told to `onSkipped`) if what it opens cannot be shown: a name that
   * is not valid, or a share not its owner's.
   */
  private leftOutUnless<T>(what: string, open: () => T): T[] {
    try {
      return [open()];
    } catch (err) {
      if (!(err instanceof SedfsError) || !LEFT_OUT.has(err.code)) throw err;
      this.onSkipped?.(`${what} was left out: ${err.message}`);
      return [];
    }
  }

  /** `/shared` lists owners; `/shared/OWNER` lists what that owner shared. */
  private async sharedChildren(dir: OpenNode): Promise<OpenNode[]> {
    const shares = await this.shares();
    if (dir.virtual === 'shared') {
      return [...new Set(shares.map((s) => s.owner))].map((o) => virtualNode('owner', o, `/${SHARED}/${o}`));
    }
    const mine = shares.filter((s) => s.owner === dir.name);
    return Promise.all(
      mine.map(async (s) => ({
        entry: await this.client.call<NodeEntry>('GET', `/v1/nodes/${s.nodeId}`),
        key: s.key,
        name: s.name,
        path: `/${SHARED}/${s.owner}/${s.name}`,
      })),
    );
  }

  private listed(n: OpenNode): ListedEntry {
    return {
      name: n.name,
      kind: n.entry.kind,
      size: n.entry.size,
      modifiedAt: n.entry.modifiedAt,
      id: n.entry.id,
    };
  }

  async mkdir(path: string, opts: { parents?: boolean } = {}, cwd = '/'): Promise<OpenNode> {
    const names = splitPath(path, cwd);
    if (names.length === 0) throw new SedfsError('SEDFS_ERR_EXISTS', '/ already exists');
    // From the home folder as the session has it: no request for its own entry.
    let node: OpenNode | LookupParent = this.home();
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const last = i === names.length - 1;
      const existing = await this.child(node, name);
      if (existing) {
        if (last && !opts.parents)
          throw new SedfsError('SEDFS_ERR_EXISTS', `${existing.path} already exists`);
        if (existing.entry.kind !== 'dir')
          throw new SedfsError('SEDFS_ERR_NOT_A_FOLDER', `${existing.path} is a file`);
        node = existing;
        continue;
      }
      if (!last && !opts.parents) {
        throw new SedfsError(
          'SEDFS_ERR_NOT_FOUND',
          `no such folder: ${joinPath(names.slice(0, i + 1))} (use -p)`,
        );
      }
      node = await this.createFolder(node, name);
    }
    // At least one name was walked: `node` is that name's folder.
    return node as OpenNode;
  }

  private async createFolder(parent: OpenNode | LookupParent, name: string): Promise<OpenNode> {
    assertCreatable(parent, name);
    const id = randomHexId();
    const key = newNodeKey();
    const entry = await this.client.call<NodeEntry>('POST', `/v1/nodes/${parent.entry.id}/children`, {
      id,
      nameMac: nameMac(parent.key, name),
      nameEnc: encryptName(parent.key, parent.entry.id, id, name),
      wrappedKey: wrapNodeKey(parent.key, id, key),
      ...keyWitness('expectParentWrappedKey', parent),
    });
    return { entry, key, name, path: childPath(parent.path, name) };
  }

  /**
   * Stores many small files (each at most one chunk) into one folder with one upload, one
   * placement request, the chunks sent 16 at a time, and one commit for all: a folder of
   * small files costs a few round trips, not several per file. Names that exist already,
   * and empty or larger files, go through `put` one by one. Returns how many were stored.
   */
  async putMany(
    folder: string,
    given: { name: string; data: Buffer }[],
    opts: Pick<TransferOptions, 'replicas' | 'onWarning'> & {
      /** the folder's names (NFC), when the caller knows them: it is not listed then */
      existing?: ReadonlySet<string>;
    } = {},
    cwd = '/',
  ): Promise<number> {
    // Names as a typed path would name them (NFC, checked), or macOS's decomposed local
    // names would be stored under a form no typed path finds.
    const files = given.map((f) => ({ name: checkName(f.name), data: f.data }));
    const parent = await this.resolve(folder, cwd);
    if (parent.entry.kind !== 'dir')
      throw new SedfsError('SEDFS_ERR_NOT_A_FOLDER', `${parent.path} is a file`);
    const existing = opts.existing ?? new Set((await this.list(parent.path)).map((e) => e.name));
    const batchable = files.filter(
      (f) => !existing.has(f.name) && f.data.length > 0 && f.data.length <= DEFAULT_CHUNK_BYTES,
    );
    for (const f of files)
      if (!batchable.includes(f)) await this.put([f.data], childPath(parent.path, f.name), opts);
    for (let i = 0; i < batchable.length; i += PUT_MANY_BATCH) {
      await this.putBatch(parent, batchable.slice(i, i + PUT_MANY_BATCH), opts);
    }
    return files.length;
  }

  private async putBatch(
    parent: OpenNode,
    files: { name: string; data: Buffer }[],
    opts: Pick<TransferOptions, 'replicas' | 'onWarning'>,
  ): Promise<void> {
    for (const f of files) assertCreatable(parent, f.name);
    const upload = await this.client.beginUpload(opts.replicas);
    const sealed = files.map((f) => {
      const sealer = new ChunkSealer(randomHexId());
      const bytes = sealer.seal(0, true, f.data);
      return { file: f, sealer, bytes, id: sha256Hex(bytes) };
    });
    const { placements, batches, warning } = await this.client.placeAround(
      upload.uploadId,
      sealed.map((s) => ({ id: s.id, size: s.bytes.length })),
    );
    if (warning) opts.onWarning?.(warning);
    // Chunks placed on the same chain go in one request each (main grouped them); a
    // chain that broke, or a batch that failed, is finished chunk by chunk.
    const receipts: StoredReceipt[][] = [];
    const position = new Map(sealed.map((s, i) => [s.id, i]));
    const single = new Set(sealed.map((_, i) => i));
    const others = new OtherServers();
    const sendOne = async (i: number, answer?: PutChunkResponse) => {
      receipts[i] = await sendChunk(
        this.client,
        placements[i] as Placement,
        (sealed[i] as (typeof sealed)[0]).bytes,
        { uploadId: upload.uploadId, sent: answer, others },
      );
    };
    await inParallel(batches ?? [], 4, async (batch) => {
      const items = batch.chunks.map((id) => position.get(id) as number);
      for (const i of items) single.delete(i);
      let answer: PutBatchResponse | undefined;
      try {
        answer = await sendBatch(
          this.client,
          batch,
          items.map((i) => (sealed[i] as (typeof sealed)[0]).bytes),
        );
      } catch {
        // the whole batch failed at its head: each chunk goes on its own below
      }
      await Promise.all(items.map((i, k) => sendOne(i, answer?.results[k])));
    });
    await inParallel([...single], 16, (i) => sendOne(i));
    const commitInto = (into: OpenNode) =>
      this.client.commitFiles(
        upload.uploadId,
        sealed.map((s, i) => ({
          chunks: [{ id: s.id, size: s.bytes.length, receipts: receipts[i] as StoredReceipt[] }],
          version: versionFor(into, s.file.name, undefined, s.sealer, s.file.data.length, DEFAULT_CHUNK_BYTES)
            .version,
        })),
      );
    try {
      await commitInto(parent);
    } catch (err) {
      if (!(err instanceof SedfsError)) throw err;
      // An unshare is replacing the keys here: as in `put`, the commit waits for it.
      if (err.code === 'SEDFS_ERR_REKEY_PENDING') {
        await afterRotation(async () => commitInto(await this.resolve(parent.path)));
      } else {
        // The folder's key was replaced by an unshare meanwhile: as in `put`, open it
        // afresh and commit again, once; the chunks stay as sent.
        if (err.code !== 'SEDFS_ERR_VERSION_CONFLICT') throw err;
        await commitInto(await this.resolve(parent.path));
      }
    }
    // Each file is one chunk: a file is short of copies when its receipts are.
    const short = receipts.filter((r) => new Set(r.map((x) => x.server)).size < upload.replicas).length;
    if (short > 0) opts.onWarning?.(shortOfCopies(parent.path, `${short} file(s)`, upload.replicas));
  }

  /**
   * Stores a stream as the new version of a file, creating the file if needed. The
   * version becomes visible in one commit; until then readers see the previous one.
   */
  async put(source: ByteSource, path: string, opts: TransferOptions = {}, cwd = '/'): Promise<OpenNode> {
    const names = splitPath(path, cwd);
    const name = names.pop();
    if (name === undefined) throw new SedfsError('SEDFS_ERR_IS_A_FOLDER', '/ is a folder');
    const parent = await this.resolve(joinPath(names));
    if (parent.entry.kind !== 'dir')
      throw new SedfsError('SEDFS_ERR_NOT_A_FOLDER', `${parent.path} is a file`);
    const existing = await this.child(parent, name);
    if (existing?.entry.kind === 'dir')
      throw new SedfsError('SEDFS_ERR_IS_A_FOLDER', `${existing.path} is a folder`);
    // A new version of a shared file is fine; a new name in the /shared view is not.
    if (!existing) assertCreatable(parent, name);
    // Meant to replace a version read (`write --append`, `edit`), of a file removed since:
    // made anew, it would bring back what the removal took away.
    if (!existing && typeof opts.expectVersionId === 'string')
      throw new SedfsError(
        'SEDFS_ERR_VERSION_CONFLICT',
        `${joinPath([...names, name])} was removed since it was read`,
      );

    // A fresh content key and version id for every attempt: no (key, nonce) pair repeats.
    const versionId = randomHexId();
    const sealer = new ChunkSealer(versionId);
    const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    const stored = await storeChunks(this.client, source, {
      chunkBytes,
      seal: (plain, index, last, into) => sealWorkers().seal(sealer, index, last, plain, into),
      ...(opts.replicas ? { replicas: opts.replicas } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
    });
    const commitAs = async (target: OpenNode | undefined, into: OpenNode = parent) => {
      const { version, fileKey } = versionFor(
        into,
        name,
        target,
        sealer,
        stored.size,
        chunkBytes,
        opts.expectVersionId,
      );
      const res = await this.client.commit(stored.uploadId, stored.chunks, version);
      const path = joinPath([...names, name]);
      if (res.underReplicated > 0)
        opts.onWarning?.(
          shortOfCopies(path, `${res.underReplicated} of its ${res.chunks} chunk(s)`, stored.replicas),
        );
      return { entry: res.node as NodeEntry, key: fileKey, name, path };
    };
    /** The commit made again under keys opened afresh (the chunks are not sent again). */
    const commitFresh = async () => {
      const into = await this.resolve(joinPath(names));
      return commitAs(await this.child(into, name), into);
    };
    try {
      return await commitAs(existing);
    } catch (err) {
      if (!(err instanceof SedfsError)) throw err;
      // An unshare is replacing the keys here (main refuses changes until it is done, a
      // second or so): the commit waits for it, then lands under the new keys.
      if (err.code === 'SEDFS_ERR_REKEY_PENDING') return afterRotation(commitFresh);
      // An unshare replaced the keys this put opened (main refuses what is wrapped under
      // them). The chunks are sealed under the upload's own content key, so nothing is
      // sent again: the keys are opened afresh and only the commit is made again, once.
      // With expectVersionId the conflict may be another version instead: the caller reads again.
      if (err.code === 'SEDFS_ERR_VERSION_CONFLICT' && opts.expectVersionId === undefined)
        return commitFresh();
      // Someone created the same name meanwhile: land as a new version of their file,
      // unless this put was to replace a version it read (then theirs must be read first).
      if (existing || err.code !== 'SEDFS_ERR_EXISTS') throw err;
      if (opts.expectVersionId !== undefined)
        throw new SedfsError(
          'SEDFS_ERR_VERSION_CONFLICT',
          `${joinPath([...names, name])} was made meanwhile`,
        );
      const raced = await this.child(parent, name);
      if (raced?.entry.kind !== 'file') throw err;
      return commitAs(raced);
    }
  }

  /**
   * Writes a file's current version to `out`, checking every chunk's authentication tag.
   * `target` is a path or a node already resolved (no second walk down the path).
   */
  async get(
    target: string | OpenNode,
    out: Writable,
    opts: TransferOptions = {},
    cwd = '/',
  ): Promise<{ size: number }> {
    let file = await this.nodeOf(target, cwd);
    if (file.entry.kind !== 'file') throw new SedfsError('SEDFS_ERR_IS_A_FOLDER', `${file.path} is a folder`);
    if (opts.content && opts.content.node.id !== file.entry.id)
      throw new SedfsError(
        'SEDFS_ERR_INTERNAL',
        `content of ${opts.content.node.id} given for ${file.entry.id}`,
      );
    const id = file.entry.id;
    const contentAt = (from: number) =>
      this.client.call<ContentResponse>('GET', `/v1/nodes/${id}/content${from > 0 ? `?from=${from}` : ''}`);
    let content = opts.content ?? (await contentAt(0));
    let contentKey: Buffer;
    try {
      contentKey = unwrapContentKey(file.key, content.version.id, content.version.contentKey);
    } catch (err) {
      // An unshare re-keyed the file between the walk that opened its key and this read:
      // the path is opened afresh, once (as a put's commit is made again).
      if ((err as SedfsError).code !== 'SEDFS_ERR_DECRYPT') throw err;
      file = await this.resolve(file.path);
      if (file.entry.id !== id) throw err;
      content = await contentAt(0);
      contentKey = unwrapContentKey(file.key, content.version.id, content.version.contentKey);
    }
    const v = content.version;
    // The chunk count comes from the size the version was committed with; main's pages
    // must add up to it (a manifest cut short would otherwise end the file early).
    const chunks = Math.max(1, Math.ceil(v.size / v.chunkBytes));
    const source = new ManifestPager(content, chunks, contentAt, file.path);
    let written = 0;
    await fetchChunks(this.client, source, out, {
      open: (stored, chunk, last) => openChunk(contentKey, v.id, chunk.index, last, stored, stored),
      onProgress: (n) => {
        written = n;
        opts.onProgress?.(n);
      },
      ...(opts.buffers ? { buffers: opts.buffers } : {}),
    });
    if (written !== v.size) {
      throw new SedfsError(
        'SEDFS_ERR_CORRUPT_CHUNK',
        `${file.path}: got ${written} bytes, expected ${v.size}`,
      );
    }
    return { size: written };
  }

  /**
   * The current contents of many files (at most CONTENTS_MAX) in one request, in their
   * order: each a content to hand to `get`, or the error a get of it alone would have
   * met. Read tickets expire (minutes): ask for what will be fetched soon.
   */
  async contents(files: OpenNode[]): Promise<(ContentResponse | SedfsError)[]> {
    if (files.length === 0) return [];
    if (files.length > CONTENTS_MAX) throw new Error(`at most ${CONTENTS_MAX} contents at once`);
    const { contents } = await this.client.call<ContentsResponse>('POST', '/v1/contents', {
      ids: files.map((f) => f.entry.id),
    });
    if (contents.length !== files.length)
      throw new SedfsError(
        'SEDFS_ERR_INTERNAL',
        `main answered ${contents.length} contents for ${files.length}`,
      );
    return contents.map((c, i) => {
      const file = files[i] as OpenNode;
      if (!('error' in c)) return c;
      const code = isErrorCode(c.error.code) ? c.error.code : 'SEDFS_ERR_INTERNAL';
      return new SedfsError(code, `${file.path}: ${c.error.message}`);
    });
  }

  async rm(path: string, opts: { recursive?: boolean } = {}, cwd = '/'): Promise<void> {
    const node = await this.resolve(path, cwd);
    if (node.virtual)
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', `${node.path} is the view of others' shares`);
    if (node.entry.parentId === null)
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'the home folder cannot be removed');
    await this.client.call('DELETE', `/v1/nodes/${node.entry.id}${opts.recursive ? '?recursive=true' : ''}`);
  }

  /**
   * Renames or moves, atomically. Into an existing folder it keeps its name; the key is
   * re-wrapped and the name re-encrypted under the new parent, on the client.
   */
  async mv(src: string, dst: string, cwd = '/'): Promise<OpenNode> {
    const node = await this.resolve(src, cwd);
    if (node.virtual)
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', `${node.path} is the view of others' shares`);
    if (node.entry.parentId === null)
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'the home folder cannot be moved');
    const dstNames = splitPath(dst, cwd);
    const target = await this.find(dst, cwd);
    let parent: OpenNode;
    let name: string;
    if (target?.entry.kind === 'dir') {
      parent = target;
      name = node.name;
      if (await this.child(parent, name))
        throw new SedfsError('SEDFS_ERR_EXISTS', `${parent.path}/${name} already exists`);
    } else if (namesFolder(dst) && node.entry.kind !== 'dir') {
      // `mv a.txt /archive/` means into /archive, as for mv: never a file named "archive".
      // A folder may be renamed so, as `mv photos pictures/` does.
      throw notAFolder(joinPath(dstNames), target);
    } else if (target) {
      throw new SedfsError('SEDFS_ERR_EXISTS', `${target.path} already exists`);
    } else {
      name = dstNames.pop() as string;
      parent = await this.resolve(joinPath(dstNames));
      if (parent.entry.kind !== 'dir')
        throw new SedfsError('SEDFS_ERR_NOT_A_FOLDER', `${parent.path} is a file`);
    }
    assertCreatable(parent, name);
    await this.client.call('POST', `/v1/nodes/${node.entry.id}/move`, {
      parentId: parent.entry.id,
      nameMac: nameMac(parent.key, name),
      nameEnc: encryptName(parent.key, parent.entry.id, node.entry.id, name),
      wrappedKey: wrapNodeKey(parent.key, node.entry.id, node.key),
      ...keyWitness('expectWrappedKey', node),
      ...keyWitness('expectParentWrappedKey', parent),
    });
    return { ...node, name, path: childPath(parent.path, name) };
  }
}

/**
 * Said after a commit that stored some chunks on fewer servers than wanted (a server in
 * a chain failed and main had no other to offer): the data is safe on the others, and
 * not yet as safe as asked.
 */
function shortOfCopies(path: string, what: string, wanted: number): string {
  return `${path}: ${what} stored on fewer file servers than the ${wanted} wanted; main's repair makes up the copies once servers allow (sedfs check shows its queue)`;
}

/** Home's `/shared` shows what others shared; a user's own folder of that name cannot exist. */
export const SHARED = 'shared';

/** Why an entry or a share is left out of a listing rather than failing all of it. */
const LEFT_OUT: ReadonlySet<string> = new Set([
  'SEDFS_ERR_BAD_NAME',
  'SEDFS_ERR_KEY_CHANGED',
  'SEDFS_ERR_UNTRUSTED_SERVER',
]);

export const grantKeyContext = (nodeId: string) => `grant:${nodeId}`;
export const grantNameContext = (nodeId: string) => `grant-name:${nodeId}`;

function virtualNode(kind: 'shared' | 'owner', name: string, path: string): OpenNode {
  return {
    entry: {
      id: '',
      kind: 'dir',
      parentId: null,
      nameMac: null,
      nameEnc: null,
      wrappedKey: null,
      versionId: null,
      size: 0,
      modifiedAt: 0,
    },
    key: Buffer.alloc(0),
    name,
    path,
    virtual: kind,
  };
}

function assertCreatable(parent: OpenNode | LookupParent, name: string): void {
  if ('virtual' in parent && parent.virtual) {
    throw new SedfsError(
      'SEDFS_ERR_BAD_REQUEST',
      `${parent.path} is the view of others' shares: create inside a shared folder`,
    );
  }
  if (parent.path === '/' && name === SHARED) {
    throw new SedfsError('SEDFS_ERR_EXISTS', `/${SHARED} is reserved for what others share with you`);
  }
}

/** Files per batch in `putMany`: one placement request and one commit each. */
const PUT_MANY_BATCH = 500;

/** The commit that makes a sealed upload `name` in `parent` (new), or a new version of `target`. */
function versionFor(
  parent: OpenNode,
  name: string,
  target: OpenNode | undefined,
  sealer: ChunkSealer,
  size: number,
  chunkBytes: number,
  expectVersionId?: string | null,
): { version: VersionCommit; fileKey: Buffer } {
  const fileId = target?.entry.id ?? randomHexId();
  const fileKey = target?.key ?? newNodeKey();
  const version: VersionCommit = {
    versionId: sealer.versionId,
    size,
    chunkBytes,
    contentKey: wrapContentKey(fileKey, sealer.versionId, sealer.key),
    target: target
      ? {
          nodeId: fileId,
          ...keyWitness('expectWrappedKey', target),
          ...(expectVersionId === undefined ? {} : { expectVersionId }),
        }
      : {
          parentId: parent.entry.id,
          nodeId: fileId,
          nameMac: nameMac(parent.key, name),
          nameEnc: encryptName(parent.key, parent.entry.id, fileId, name),
          wrappedKey: wrapNodeKey(parent.key, fileId, fileKey),
          ...keyWitness('expectParentWrappedKey', parent),
        },
  };
  return { version, fileKey };
}

/**
 * The node's wrapped key as it was when its key was opened, sent as `field` with what
 * is wrapped or encrypted under that key: main refuses it if an unshare has replaced the
 * key since (see ExpectWrappedKey). The home folder's key is never replaced.
 */
export function keyWitness<F extends string>(field: F, node: { entry: object }): { [K in F]?: string } {
  const wrapped = (node.entry as { wrappedKey?: string | null }).wrappedKey;
  return (wrapped ? { [field]: wrapped } : {}) as { [K in F]?: string };
}

/** A grant's signing time as the user reads it (0: signed before grants were dated). */
function dated(signedAt: number): string {
  if (signedAt === 0) return 'before grants were dated';
  const at = new Date(signedAt);
  return Number.isNaN(at.getTime()) ? `at ${signedAt} ms after 1970` : `at ${at.toISOString()}`;
}
