import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { login, me, signup } from '../../src/client/account.js';
import type { ClusterClient } from '../../src/client/cluster-client.js';
import { FileSystem, type OpenNode } from '../../src/client/file-system.js';
import { finishRotations, lock, perms, share, unlock, unshare } from '../../src/client/sharing.js';
import { openChunk } from '../../src/crypto/content.js';
import { signGrant } from '../../src/crypto/grant-signature.js';
import { randomHexId } from '../../src/crypto/hash.js';
import {
  fingerprint,
  generateIdentity,
  type SecretIdentity,
  sealTo,
  signMessage,
} from '../../src/crypto/identity.js';
import {
  encryptName,
  nameMac,
  newNodeKey,
  unwrapContentKey,
  unwrapNodeKey,
  wrapContentKey,
  wrapNodeKey,
} from '../../src/crypto/node-keys.js';
import type {
  ContentResponse,
  NodeEntry,
  RekeyRequest,
  RotationsResponse,
  ShareEntry,
  SubtreeResponse,
  UserKeysResponse,
} from '../../src/protocol/namespace-api.js';
import { TICKET_HEADER } from '../../src/protocol/ticket.js';
import { TestCluster } from '../helpers/cluster.js';
import { MemoryPins } from '../helpers/pins.js';
import { collector } from '../helpers/sinks.js';

interface Actor {
  name: string;
  fs: FileSystem;
  client: ClusterClient;
  identity: SecretIdentity;
  pins: MemoryPins;
}

async function text(fs: FileSystem, path: string): Promise<string> {
  const out = collector();
  await fs.get(path, out.sink);
  return out.bytes().toString();
}

/** Resolves to 'ok', or to the error code the operation failed with. */
/** An unshare whose client loses main right after the grant is revoked: no new key arrives. */
async function unshareCutShort(a: Actor, path: string, user: string): Promise<string> {
  const restore = watchCalls(a, (called) => {
    if (called.endsWith('/rekey')) throw new Error('connection lost');
  });
  try {
    return await outcome(() => unshare(a.fs, a.pins, path, user));
  } finally {
    restore();
  }
}

async function outcome(op: () => Promise<unknown>): Promise<string> {
  try {
    await op();
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/**
 * Runs `fn` with the path and body of every call the actor's client makes to main,
 * before the call (throwing makes it fail); returns what puts the client back.
 */
function watchCalls(actor: Actor, fn: (path: string, body: unknown) => void): () => void {
  const call = actor.client.call.bind(actor.client);
  actor.client.call = (async (...args: Parameters<typeof call>) => {
    fn(args[1], args[2]);
    return call(...args);
  }) as typeof call;
  return () => {
    actor.client.call = call;
  };
}

/**
 * Runs `before` (awaited) ahead of every call the actor's client makes to main, and
 * `settled` once it is answered (with the answer) or failed (with the error); returns
 * what puts the client back.
 */
function hookCalls(
  actor: Actor,
  before: (path: string, body: unknown) => Promise<void> | void,
  settled: (path: string, answer: unknown, error?: unknown) => void = () => undefined,
): () => void {
  const call = actor.client.call.bind(actor.client);
  actor.client.call = (async (...args: Parameters<typeof call>) => {
    await before(args[1], args[2]);
    let answer: unknown;
    let error: unknown;
    try {
      answer = await call(...args);
      return answer;
    } catch (err) {
      error = err;
      throw err;
    } finally {
      settled(args[1], answer, error);
    }
  }) as typeof call;
  return () => {
    actor.client.call = call;
  };
}

describe('sharing: grant, revoke, enforce, audit, lock', () => {
  let cluster: TestCluster;
  const actors: Record<string, Actor> = {};
  let folderId: string;
  let fileId: string;

  before(async () => {
    cluster = await TestCluster.start({ servers: 2, replicas: 2 });
    for (const name of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) {
      const client = cluster.newClient();
      const { identity } = await signup(client, name);
      await login(client, name, identity);
      actors[name] = {
        name,
        client,
        identity,
        fs: await FileSystem.open(client, identity),
        pins: new MemoryPins(),
      };
    }
    const a = actors.alice as Actor;
    await a.fs.mkdir('/proj/sub', { parents: true });
    await a.fs.put([Buffer.from('project notes')], '/proj/f.txt');
    await a.fs.put([Buffer.from('solo file')], '/note.txt');
    folderId = (await a.fs.resolve('/proj')).entry.id;
    fileId = (await a.fs.resolve('/note.txt')).entry.id;
    for (const [who, perm] of [
      ['bob', 'read'],
      ['carol', 'write'],
      ['erin', 'read'],
    ] as const) {
      await share(a.fs, a.pins, '/proj', who, perm);
      await share(a.fs, a.pins, '/note.txt', who, perm);
    }
  });
  /** Alice's new folder `path` with `files` (path inside: content), shared with frank; as frank opens it. */
  async function sharedWithFrank(
    path: string,
    files: Record<string, string>,
    perm: 'read' | 'write',
  ): Promise<OpenNode> {
    const a = actors.alice as Actor;
    await a.fs.mkdir(path);
    for (const [rel, content] of Object.entries(files)) {
      const at = `${path}/${rel}`;
      await a.fs.mkdir(at.slice(0, at.lastIndexOf('/')), { parents: true });
      await a.fs.put([Buffer.from(content)], at);
    }
    await share(a.fs, a.pins, path, 'frank', perm);
    return (actors.frank as Actor).fs.resolve(`/shared/alice${path}`);
  }

  /**
   * `path` shared with frank (to be unshared from him) and `kept` (`path` itself or a
   * folder inside it) with carol, whose grant an unshare's rotation keeps: its node id,
   * and carol's grant there as she lists it.
   */
  async function keptForCarol(path: string, kept: string, files: Record<string, string>) {
    const a = actors.alice as Actor;
    await sharedWithFrank(path, files, 'read');
    await share(a.fs, a.pins, kept, 'carol', 'read');
    const nodeId = (await a.fs.resolve(kept)).entry.id;
    const carolsGrant = async () =>
      (await (actors.carol as Actor).fs.shares()).find((s) => s.nodeId === nodeId) as ShareEntry & {
        name: string;
      };
    return { nodeId, carolsGrant };
  }

  after(async () => {
    for (const a of Object.values(actors)) await a.client.close();
    await cluster?.stop();
  });

  test('grantees see shares under /shared/OWNER/NAME and read them', async () => {
    const bob = actors.bob as Actor;
    assert.deepEqual(
      (await bob.fs.list('/shared/alice')).map((e) => e.name),
      ['note.txt', 'proj'],
    );
    assert.equal(await text(bob.fs, '/shared/alice/proj/f.txt'), 'project notes');
    assert.equal(await text(bob.fs, '/shared/alice/note.txt'), 'solo file');
    assert.ok((await bob.fs.list('/')).some((e) => e.name === 'shared' && e.kind === 'dir'));
  });

  test('a share whose key or name does not open (anyone can share with anyone) is left out with a warning, not allowed to break ls / or the other shares', async () => {
    const d = actors.dave as Actor;
    const e = actors.erin as Actor;
    const erinId = (await d.client.call<UserKeysResponse>('GET', '/v1/users/erin')).id;
    for (const [i, sealedKey] of [
      'AAAA', // too short to hold anything
      Buffer.alloc(60).toString('base64url'), // a point of small order: no shared secret
      Buffer.alloc(60, 7).toString('base64url'), // the right length, sealed to no one
    ].entries()) {
      const node = await d.fs.mkdir(`/junk${i}`);
      const grant = { nodeId: node.entry.id, sealedKey, sealedName: sealedKey, signedAt: Date.now() };
      await d.client.call('POST', `/v1/nodes/${node.entry.id}/grants`, {
        grantee: erinId,
        perm: 'read',
        sealedKey,
        sealedName: sealedKey,
        signature: signGrant(d.identity, grant),
        signedAt: grant.signedAt,
        expectWrappedKey: node.entry.wrappedKey as string,
      });
    }
    const skipped: string[] = [];
    e.fs.onSkipped = (m) => skipped.push(m);
    try {
      assert.ok((await e.fs.list('/')).some((x) => x.name === 'shared'));
      assert.deepEqual(
        (await e.fs.list('/shared')).map((x) => x.name),
        ['alice'],
      );
      assert.deepEqual(
        (await e.fs.list('/shared/alice')).map((x) => x.name),
        ['note.txt', 'proj'],
      );
      assert.equal(await text(e.fs, '/shared/alice/proj/f.txt'), 'project notes');
      assert.ok(skipped.length > 0);
      assert.ok(
        skipped.every((m) => m === 'a share from dave was left out: it does not open with your keys'),
        skipped.join('\n'),
      );
    } finally {
      e.fs.onSkipped = undefined;
    }
  });

  test("a share its owner's pinned key did not sign (one main made, one re-sealed, one unsigned) is left out saying why, and main refuses a grant its owner did not sign", async () => {
    const a = actors.alice as Actor;
    const b = actors.bob as Actor;
    const d = actors.dave as Actor;
    const mains = generateIdentity();
    const bobPins = new MemoryPins();
    const open = async (lie: (path: string, answer: unknown) => void) => {
      const notices: string[] = [];
      const skipped: string[] = [];
      const fs = await FileSystem.open(b.client, b.identity, { pins: bobPins });
      fs.onNotice = (m) => notices.push(m);
      fs.onSkipped = (m) => skipped.push(m);
      const restore = hookCalls(b, () => undefined, lie);
      try {
        return { names: (await fs.shares()).map((e) => e.name).sort(), notices, skipped };
      } finally {
        restore();
      }
    };
    const shareOf = (answer: unknown, id: string) =>
      (answer as { shares: ShareEntry[] }).shares.find((s) => s.nodeId === id) as ShareEntry;

    // Told the truth, bob pins alice's key the first time and is told its fingerprint.
    const truth = await open(() => undefined);
    assert.deepEqual(truth.names, ['note.txt', 'proj']);
    assert.deepEqual(truth.skipped, []);
    assert.deepEqual(
      (await b.fs.list('/shared/alice')).map((e) => e.name),
      ['note.txt', 'proj'],
    );
    const fp = bobPins.map.alice?.fingerprint as string;
    assert.equal(fp, fingerprint(await me(a.client)));
    assert.deepEqual(truth.notices, [
      `pinned alice's key, who shares with you: fingerprint ${fp} (compare it with what alice's sedfs whoami prints)`,
    ]);

    // Main seals a key of its own to bob as /proj's, and leaves /note.txt's unsigned.
    const lied = await open((path, answer) => {
      if (path !== '/v1/shares') return;
      const proj = shareOf(answer, folderId);
      proj.sealedKey = sealTo(b.identity.boxKey, newNodeKey(), `grant:${folderId}`).toString('base64url');
      delete shareOf(answer, fileId).signature;
    });
    assert.deepEqual(lied.names, []);
    assert.deepEqual(lied.notices, []);
    assert.deepEqual(lied.skipped.sort(), [
      'a share from alice was left out: alice did not sign it (shares made before 2026-11-29 are not signed): alice can share it again',
      "a share from alice was left out: it is not signed by alice's key: someone other than alice, main perhaps, made it",
    ]);

    // A lie told consistently: main's own key given out as alice's, its grant signed by
    // it. Against the pin it is a changed key, and every share from "alice" is left out.
    const consistent = await open((path, answer) => {
      if (path === '/v1/users/alice') {
        (answer as UserKeysResponse).signKey = mains.signKey;
        (answer as UserKeysResponse).boxKey = mains.boxKey;
      }
      if (path !== '/v1/shares') return;
      const proj = shareOf(answer, folderId);
      proj.sealedKey = sealTo(b.identity.boxKey, newNodeKey(), `grant:${folderId}`).toString('base64url');
      proj.signedAt = Date.now();
      proj.signature = signGrant(mains, { ...proj, signedAt: proj.signedAt });
    });
    assert.deepEqual(consistent.names, []);
    assert.equal(consistent.skipped.length, 2);
    for (const m of consistent.skipped)
      assert.match(
        m,
        /^a share from alice was left out: WARNING: alice's key changed from .* If alice really made a new key, accept it with: sedfs pin alice --accept-new-key; otherwise someone may be impersonating them\.$/,
      );
    assert.equal(bobPins.map.alice?.fingerprint, fp, 'the pin is kept');

    // Main refuses a grant that is not signed with its owner's key, before storing it.
    const node = await d.fs.mkdir('/unsigned');
    const bobId = (await d.client.call<UserKeysResponse>('GET', '/v1/users/bob')).id;
    const grant = {
      nodeId: node.entry.id,
      sealedKey: sealTo(b.identity.boxKey, newNodeKey(), `grant:${node.entry.id}`).toString('base64url'),
      sealedName: sealTo(b.identity.boxKey, Buffer.from('unsigned'), `grant-name:${node.entry.id}`).toString(
        'base64url',
      ),
      signedAt: Date.now(),
    };
    await assert.rejects(
      d.client.call('POST', `/v1/nodes/${node.entry.id}/grants`, {
        grantee: bobId,
        perm: 'read',
        sealedKey: grant.sealedKey,
        sealedName: grant.sealedName,
        signature: signGrant(mains, grant),
        signedAt: grant.signedAt,
        expectWrappedKey: node.entry.wrappedKey as string,
      }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SEDFS_ERR_BAD_REQUEST');
        assert.match(err.message, /the grant is not signed with your key/);
        return true;
      },
    );
    assert.deepEqual(
      (await b.fs.list('/shared')).map((e) => e.name),
      ['alice'],
    );

    // A user whose name every object has a property for is pinned and checked as any other.
    const client = cluster.newClient();
    const { identity } = await signup(client, 'constructor');
    await login(client, 'constructor', identity);
    const odd = await FileSystem.open(client, identity);
    await odd.mkdir('/odd');
    await share(odd, new MemoryPins(), '/odd', 'bob', 'read');
    const named = await open(() => undefined);
    assert.deepEqual(named.skipped, []);
    assert.deepEqual(named.names, ['note.txt', 'odd', 'proj']);
    assert.equal(
      Object.entries(bobPins.map).find(([u]) => u === 'constructor')?.[1].fingerprint,
      fingerprint(identity),
    );
    await client.close();
  });

  /**
   * The matrix on the folder share (inherited: every target is inside /proj) and on the
   * file share. Grantees act through paths; the stranger and the revoked user, who
   * cannot resolve any path, act on the node ids directly: main must refuse them too.
   */
  test('the permission matrix: owner, reader, writer, stranger and revoked user on a folder and a file share', async () => {
    const a = actors.alice as Actor;
    // erin is revoked before the matrix runs.
    await unshare(a.fs, a.pins, '/proj', 'erin');
    await unshare(a.fs, a.pins, '/note.txt', 'erin');

    const viaPath = async (
      who: string,
      base: string,
      kind: 'folder' | 'file',
    ): Promise<Record<string, string>> => {
      const { fs, pins } = actors[who] as Actor;
      const p = (rel: string) => (kind === 'folder' ? `${base}/${rel}` : base);
      const r: Record<string, string> = {};
      if (kind === 'folder') {
        await (actors.alice as Actor).fs.put([Buffer.from('x')], `/proj/rm-${who}`);
        await (actors.alice as Actor).fs.put([Buffer.from('x')], `/proj/mv-${who}`);
      }
      r.ls = await outcome(() => fs.list(base));
      r.cat = await outcome(() => text(fs, p('f.txt')));
      r.get = await outcome(() => fs.get(p('f.txt'), collector().sink));
      r.put = await outcome(() =>
        fs.put([Buffer.from(`put by ${who}`)], kind === 'folder' ? p(`new-${who}`) : base),
      );
      r.write = await outcome(() =>
        fs.put([Buffer.from(`msg by ${who}\n`)], kind === 'folder' ? p(`msg-${who}`) : base),
      );
      if (kind === 'folder') {
        r.mkdir = await outcome(() => fs.mkdir(p(`dir-${who}`)));
        r.rm = await outcome(() => fs.rm(p(`rm-${who}`)));
        r.mv = await outcome(() => fs.mv(p(`mv-${who}`), p(`moved-${who}`)));
      } else {
        r.rm = await outcome(() => fs.rm(base));
        // Out of the share into their own home: the server must refuse to take it out of its folder.
        r.mv = await outcome(() => fs.mv(base, `/moved-${who}`));
      }
      r.share = await outcome(() => share(fs, pins, base, 'frank', 'read'));
      r.unshare = await outcome(() => unshare(fs, pins, base, 'frank'));
      r.perms = await outcome(() => perms(fs, base));
      r.lock = await outcome(async () => {
        await lock(fs, p('f.txt'), 60);
        await fs.client.call('DELETE', `/v1/nodes/${(await fs.resolve(p('f.txt'))).entry.id}/lock`);
      });
      return r;
    };

    const viaIds = async (
      who: string,
      nodeId: string,
      kind: 'folder' | 'file',
    ): Promise<Record<string, string>> => {
      const c = (actors[who] as Actor).client;
      const id16 = () => createHash('sha256').update(`${who}${Math.random()}`).digest('hex').slice(0, 32);
      const fakeMac = 'ab'.repeat(32);
      const r: Record<string, string> = {};
      r.ls = await outcome(() => c.call('GET', `/v1/nodes/${nodeId}/children`));
      r.cat = await outcome(() => c.call('GET', `/v1/nodes/${nodeId}/content`));
      r.get = r.cat;
      const up = await c.beginUpload(1);
      r.put = await outcome(() =>
        c.commit(up.uploadId, [], {
          versionId: id16(),
          size: 0,
          chunkBytes: 1,
          contentKey: 'AAAA',
          target:
            kind === 'folder'
              ? { parentId: nodeId, nodeId: id16(), nameMac: fakeMac, nameEnc: 'AAAA', wrappedKey: 'AAAA' }
              : { nodeId },
        }),
      );
      r.write = r.put;
      r.mkdir = await outcome(() =>
        c.call('POST', `/v1/nodes/${nodeId}/children`, {
          id: id16(),
          nameMac: fakeMac,
          nameEnc: 'AAAA',
          wrappedKey: 'AAAA',
        }),
      );
      r.rm = await outcome(() => c.call('DELETE', `/v1/nodes/${nodeId}?recursive=true`));
      r.mv = await outcome(() =>
        c.call('POST', `/v1/nodes/${nodeId}/move`, {
          parentId: nodeId,
          nameMac: fakeMac,
          nameEnc: 'AAAA',
          wrappedKey: 'AAAA',
        }),
      );
      r.share = await outcome(() =>
        c.call('POST', `/v1/nodes/${nodeId}/grants`, {
          grantee: id16(),
          perm: 'read',
          sealedKey: 'AAAA',
          sealedName: 'AAAA',
          signature: 'A'.repeat(86),
        }),
      );
      r.unshare = await outcome(() => c.call('GET', `/v1/nodes/${nodeId}/subtree`));
      r.perms = await outcome(() => c.call('GET', `/v1/nodes/${nodeId}/perms`));
      r.lock = await outcome(() => c.call('POST', `/v1/nodes/${nodeId}/lock`, { ttlSeconds: 5 }));
      return r;
    };

    const F = 'SEDFS_ERR_FORBIDDEN';
    const N = 'SEDFS_ERR_NOT_FOUND';
    const all = (v: string, keys: string[]) => Object.fromEntries(keys.map((k) => [k, v]));
    const folderOps = [
      'ls',
      'cat',
      'get',
      'put',
      'write',
      'mkdir',
      'rm',
      'mv',
      'share',
      'unshare',
      'perms',
      'lock',
    ];
    const fileOps = ['ls', 'cat', 'get', 'put', 'write', 'rm', 'mv', 'share', 'unshare', 'perms', 'lock'];

    // Folder share.
    const owner = await viaPath('alice', '/proj', 'folder');
    assert.deepEqual(owner, { ...all('ok', folderOps), unshare: 'ok' });
    assert.deepEqual(await viaPath('bob', '/shared/alice/proj', 'folder'), {
      ...all(F, folderOps),
      ls: 'ok',
      cat: 'ok',
      get: 'ok',
      perms: 'ok',
    });
    assert.deepEqual(await viaPath('carol', '/shared/alice/proj', 'folder'), {
      ...all('ok', folderOps),
      share: F,
      unshare: F,
    });
    assert.deepEqual(await viaIds('dave', folderId, 'folder'), all(N, folderOps));
    assert.deepEqual(await viaIds('erin', folderId, 'folder'), all(N, folderOps));

    // File share: removing or renaming a file needs write on its folder, which a file share does not give.
    assert.deepEqual(await viaPath('bob', '/shared/alice/note.txt', 'file'), {
      ...all(F, fileOps),
      ls: 'ok',
      cat: 'ok',
      get: 'ok',
      perms: 'ok',
      rm: N,
      mv: N,
    });
    assert.deepEqual(await viaPath('carol', '/shared/alice/note.txt', 'file'), {
      ...all('ok', fileOps),
      share: F,
      unshare: F,
      rm: N,
      mv: N,
    });
    assert.deepEqual(await viaIds('dave', fileId, 'file'), { ...all(N, fileOps), mkdir: N });
    assert.deepEqual(await viaIds('erin', fileId, 'file'), { ...all(N, fileOps), mkdir: N });
  });

  test('revocation: the revoked user is refused at once, and every key they ever held fails on what is written next', async () => {
    const a = actors.alice as Actor;
    const frank = actors.frank as Actor;
    await a.fs.mkdir('/rev');
    await a.fs.put([Buffer.from('before')], '/rev/doc.txt');
    await share(a.fs, a.pins, '/rev', 'frank', 'read');
    // Everything frank received while he had access: folder key, file key, content key.
    const held: Buffer[] = [];
    const granted = (await frank.fs.shares()).find((x) => x.name === 'rev');
    assert.ok(granted);
    held.push(granted.key);
    const doc = await frank.fs.resolve('/shared/alice/rev/doc.txt');
    held.push(doc.key);
    const old = await frank.client.call<ContentResponse>('GET', `/v1/nodes/${doc.entry.id}/content`);
    held.push(unwrapContentKey(doc.key, old.version.id, old.version.contentKey));
    assert.equal(await text(frank.fs, '/shared/alice/rev/doc.txt'), 'before');

    await unshare(a.fs, a.pins, '/rev', 'frank');
    assert.equal(
      await outcome(() => frank.client.call('GET', `/v1/nodes/${doc.entry.id}/content`)),
      'SEDFS_ERR_NOT_FOUND',
    );
    assert.deepEqual(await frank.fs.shares(), []);

    await a.fs.put([Buffer.from('after: new secret')], '/rev/doc.txt');
    const fresh = await a.client.call<ContentResponse>('GET', `/v1/nodes/${doc.entry.id}/content`);
    const node = await a.client.call<NodeEntry>('GET', `/v1/nodes/${doc.entry.id}`);
    const chunk = fresh.manifest.chunks[0];
    assert.ok(chunk);
    const res = await request(`${chunk.replicas[0]?.url}/v1/chunks/${chunk.id}`, {
      dispatcher: cluster.agent,
      headers: { [TICKET_HEADER]: chunk.ticket },
    });
    const stored = Buffer.from(await res.body.arrayBuffer());
    for (const key of held) {
      assert.throws(() => unwrapNodeKey(key, doc.entry.id, node.wrappedKey as string));
      assert.throws(() => unwrapContentKey(key, fresh.version.id, fresh.version.contentKey));
      assert.throws(() => openChunk(key, fresh.version.id, 0, true, stored));
    }
    assert.equal(await text(a.fs, '/rev/doc.txt'), 'after: new secret');
  });

  test('a reader cannot write through a file server with the read ticket it was given', async () => {
    const bob = actors.bob as Actor;
    const f = await bob.fs.resolve('/shared/alice/proj/f.txt');
    const content = await bob.client.call<ContentResponse>('GET', `/v1/nodes/${f.entry.id}/content`);
    const chunk = content.manifest.chunks[0];
    assert.ok(chunk);
    const body = Buffer.from('overwrite attempt');
    const id = createHash('sha256').update(body).digest('hex');
    for (const target of [id, chunk.id]) {
      const res: Awaited<ReturnType<typeof request>> = await request(
        `${chunk.replicas[0]?.url}/v1/chunks/${target}`,
        {
          dispatcher: cluster.agent,
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream', [TICKET_HEADER]: chunk.ticket },
          body,
        },
      );
      const err = (await res.body.json()) as { error: { code: string } };
      assert.equal(res.statusCode, 403);
      assert.equal(err.error.code, 'SEDFS_ERR_TICKET_MISMATCH');
    }
    assert.equal(await text(bob.fs, '/shared/alice/proj/f.txt'), 'project notes');
  });

  test('a changed public key for a pinned user stops share with a clear error until confirmed', async () => {
    const a = actors.alice as Actor;
    const pinned = a.pins.map.bob;
    assert.ok(pinned, 'bob was pinned at the first share');
    a.pins.map.bob = { ...pinned, fingerprint: '0000:0000:0000:0000:0000:0000:0000:0000' };
    await assert.rejects(
      share(a.fs, a.pins, '/note.txt', 'bob', 'read'),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SEDFS_ERR_KEY_CHANGED');
        assert.match(err.message, /bob's key changed/);
        return true;
      },
    );
    await share(a.fs, a.pins, '/note.txt', 'bob', 'read', { acceptNewKey: true });
    assert.equal(a.pins.map.bob?.fingerprint, pinned.fingerprint);
  });

  test('a lock held by alice blocks a writer’s put, write, rm and mv with who and until when, and expires by itself', async () => {
    const a = actors.alice as Actor;
    const carol = actors.carol as Actor;
    await a.fs.put([Buffer.from('locked content')], '/proj/locked.txt');
    await a.fs.put([Buffer.from('y')], '/proj/locked-dir-file');
    // Long enough for the refusals below on a loaded machine; waited out after them.
    const { expiresAt } = await lock(a.fs, '/proj/locked.txt', 5);
    const base = '/shared/alice/proj';
    for (const op of [
      () => carol.fs.put([Buffer.from('nope')], `${base}/locked.txt`),
      () => carol.fs.rm(`${base}/locked.txt`),
      () => carol.fs.mv(`${base}/locked.txt`, `${base}/elsewhere.txt`),
    ]) {
      await assert.rejects(op(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SEDFS_ERR_LOCKED');
        assert.match(err.message, /^locked by alice until \d{4}-\d\d-\d\dT/);
        return true;
      });
    }
    await sleep(Math.max(0, expiresAt - Date.now()) + 200);
    await carol.fs.put([Buffer.from('after expiry')], `${base}/locked.txt`);
    assert.equal(await text(a.fs, '/proj/locked.txt'), 'after expiry');
  });

  test("a writer's entries filed under another name's MAC, or with a key that does not open, are left out of listings, and unshare still revokes them", async () => {
    const a = actors.alice as Actor;
    const f = actors.frank as Actor;
    const dir = await sharedWithFrank('/decoy', { 'report.txt': 'the real report' }, 'write');
    // frank goes around his client, as a hostile writer would: a second "report.txt"
    // filed under the MAC of another name, so main sees no clash.
    const id = randomHexId();
    await f.client.call('POST', `/v1/nodes/${dir.entry.id}/children`, {
      id,
      expectParentWrappedKey: dir.entry.wrappedKey as string,
      nameMac: nameMac(dir.key, 'zz-decoy'),
      nameEnc: encryptName(dir.key, dir.entry.id, id, 'report.txt'),
      wrappedKey: wrapNodeKey(dir.key, id, newNodeKey()),
    });
    // And an entry whose wrapped key is for another node: nobody can open it.
    const broken = randomHexId();
    await f.client.call('POST', `/v1/nodes/${dir.entry.id}/children`, {
      id: broken,
      expectParentWrappedKey: dir.entry.wrappedKey as string,
      nameMac: nameMac(dir.key, 'broken.txt'),
      nameEnc: encryptName(dir.key, dir.entry.id, broken, 'broken.txt'),
      wrappedKey: wrapNodeKey(dir.key, randomHexId(), newNodeKey()),
    });
    const skipped: string[] = [];
    a.fs.onSkipped = (m) => skipped.push(m);
    try {
      assert.deepEqual(
        (await a.fs.list('/decoy')).map((e) => e.name),
        ['report.txt'],
      );
      assert.equal(await text(a.fs, '/decoy/report.txt'), 'the real report');
      assert.deepEqual(
        skipped.sort(),
        [
          `/decoy: an entry (${broken.slice(0, 8)}) was left out: its key does not open`,
          `/decoy: an entry (${id.slice(0, 8)}) was left out: its name is not the one it is filed under`,
        ].sort(),
      );
      await assert.rejects(a.fs.resolve('/decoy/zz-decoy'), { code: 'SEDFS_ERR_BAD_NAME' });
      // The re-key names the first for what it is instead of colliding with the real
      // file, and gives the second a key that opens (on nothing anyone could read).
      assert.deepEqual(await unshare(a.fs, a.pins, '/decoy', 'frank'), { nodes: 4, sharesInside: 0 });
      assert.deepEqual(
        (await a.fs.list('/decoy')).map((e) => e.name),
        ['broken.txt', 'report.txt', `report.txt (conflict ${id})`],
      );
      await a.fs.rm('/decoy/broken.txt');
      assert.equal(await outcome(() => f.fs.list('/shared/alice/decoy')), 'SEDFS_ERR_NOT_FOUND');
    } finally {
      a.fs.onSkipped = undefined;
    }
  });

  test('a writer cannot keep their access by planting entries whose re-keyed names would collide: they are refused at once and the keys are replaced', async () => {
    const a = actors.alice as Actor;
    const f = actors.frank as Actor;
    const dir = await sharedWithFrank('/planted', { 'real.txt': 'kept' }, 'write');
    // Two entries whose names do not decrypt, with ids alike in their first 8 hex digits,
    // and one whose (valid) name is what the owner's client would call the first.
    const prefix = randomHexId().slice(0, 8);
    const ids = [`${prefix}${randomHexId().slice(8)}`, `${prefix}${randomHexId().slice(8)}`];
    for (const id of ids)
      await f.client.call('POST', `/v1/nodes/${dir.entry.id}/children`, {
        id,
        expectParentWrappedKey: dir.entry.wrappedKey as string,
        nameMac: randomHexId() + randomHexId(),
        nameEnc: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
        wrappedKey: wrapNodeKey(dir.key, id, newNodeKey()),
      });
    await f.fs.mkdir(`/shared/alice/planted/unreadable name ${ids[0]}`);
    const tried = await outcome(() => unshare(a.fs, a.pins, '/planted', 'frank'));
    assert.equal(
      await outcome(() => f.client.call('GET', `/v1/nodes/${dir.entry.id}/children`)),
      'SEDFS_ERR_NOT_FOUND',
      'frank is refused whatever became of the re-key',
    );
    assert.equal(tried, 'ok');
    const names = (await a.fs.list('/planted')).map((e) => e.name);
    assert.equal(names.length, 4);
    assert.equal(new Set(names).size, 4);
    assert.ok(names.includes('real.txt'));
    assert.ok(names.includes(`unreadable name ${ids[0]}`));
    assert.ok(names.includes(`unreadable name ${ids[1]}`));
    assert.equal(await text(a.fs, '/planted/real.txt'), 'kept');
    const real = await a.fs.resolve('/planted/real.txt');
    assert.throws(() => unwrapNodeKey(dir.key, real.entry.id, real.entry.wrappedKey as string));
  });

  test('the revocation holds when the key rotation after it does not finish: changes under the folder wait for it, and the owner finishes it', async () => {
    const a = actors.alice as Actor;
    const f = actors.frank as Actor;
    const folder = await sharedWithFrank('/halfway', { 'sub/doc.txt': 'old secret' }, 'write');
    const held = await f.fs.resolve('/shared/alice/halfway/sub/doc.txt');
    // Alice's client loses main right after the grant is revoked: no part of the new keys arrives.
    const restore = watchCalls(a, (path) => {
      if (path.endsWith('/rekey')) throw new Error('connection lost');
    });
    let failed: unknown;
    try {
      await unshare(a.fs, a.pins, '/halfway', 'frank');
    } catch (err) {
      failed = err;
    } finally {
      restore();
    }
    assert.equal((failed as { code?: string }).code, 'SEDFS_ERR_REKEY_PENDING');
    assert.match(
      (failed as Error).message,
      /^frank's access to \/halfway is revoked, but replacing the keys did not finish \(connection lost\)\. Until it does, main refuses changes there; finish it with: sedfs unshare --finish$/,
    );
    assert.equal(
      await outcome(() => f.client.call('GET', `/v1/nodes/${folder.entry.id}/children`)),
      'SEDFS_ERR_NOT_FOUND',
    );
    // Nothing is written under the keys frank holds, by anyone, until the keys are replaced.
    for (const op of [
      () => a.fs.put([Buffer.from('new secret')], '/halfway/sub/doc.txt'),
      () => a.fs.put([Buffer.from('new file')], '/halfway/new.txt'),
      () => a.fs.mkdir('/halfway/new'),
      () => a.fs.mv('/halfway/sub/doc.txt', '/halfway/doc.txt'),
      () => a.fs.rm('/halfway/sub/doc.txt'),
      () => share(a.fs, a.pins, '/halfway/sub', 'bob', 'read'),
    ])
      assert.equal(await outcome(op), 'SEDFS_ERR_REKEY_PENDING');
    assert.equal(await text(a.fs, '/halfway/sub/doc.txt'), 'old secret', 'reading goes on');
    const pending = await a.client.call<{ rotations: { nodeId: string }[] }>('GET', '/v1/rotations');
    assert.deepEqual(
      pending.rotations.map((r) => r.nodeId),
      [folder.entry.id],
    );

    assert.deepEqual(await finishRotations(a.fs, a.pins), [{ path: '/halfway', nodes: 3 }]);
    assert.deepEqual((await a.client.call<{ rotations: unknown[] }>('GET', '/v1/rotations')).rotations, []);
    await a.fs.put([Buffer.from('new secret')], '/halfway/sub/doc.txt');
    assert.equal(await text(a.fs, '/halfway/sub/doc.txt'), 'new secret');
    const node = await a.client.call<NodeEntry>('GET', `/v1/nodes/${held.entry.id}`);
    const fresh = await a.client.call<ContentResponse>('GET', `/v1/nodes/${held.entry.id}/content`);
    for (const key of [folder.key, held.key]) {
      assert.throws(() => unwrapNodeKey(key, held.entry.id, node.wrappedKey as string));
      assert.throws(() => unwrapContentKey(key, fresh.version.id, fresh.version.contentKey));
    }
  });

  test('a put made while an unshare is replacing the keys waits for it, then lands under the new keys', async () => {
    const a = actors.alice as Actor;
    await sharedWithFrank('/waiting', { 'doc.txt': 'v1' }, 'write');
    assert.equal(await unshareCutShort(a, '/waiting', 'frank'), 'SEDFS_ERR_REKEY_PENDING');
    const put = outcome(() => a.fs.put([Buffer.from('v2')], '/waiting/doc.txt'));
    const many = outcome(() => a.fs.putMany('/waiting', [{ name: 'small.txt', data: Buffer.from('s') }]));
    await sleep(300);
    assert.equal((await finishRotations(a.fs, a.pins)).length, 1);
    assert.equal(await put, 'ok');
    assert.equal(await many, 'ok', 'small files put at once wait the same way');
    assert.equal(await text(a.fs, '/waiting/doc.txt'), 'v2');
    assert.equal(await text(a.fs, '/waiting/small.txt'), 's');
  });

  test('an unshare run again after its key rotation was cut short finishes the rotation instead of saying there is no grant', async () => {
    const a = actors.alice as Actor;
    await sharedWithFrank('/again', { 'doc.txt': 'v1' }, 'write');
    assert.equal(await unshareCutShort(a, '/again', 'frank'), 'SEDFS_ERR_REKEY_PENDING');
    assert.ok((await unshare(a.fs, a.pins, '/again', 'frank')).nodes > 0);
    assert.deepEqual((await a.client.call<{ rotations: unknown[] }>('GET', '/v1/rotations')).rotations, []);
    await a.fs.put([Buffer.from('v2')], '/again/doc.txt');
  });

  test("an unshare's key rotation refuses a grantee's key main swapped for another, sealing nothing to it and sending no part of the new keys", async () => {
    const a = actors.alice as Actor;
    const c = actors.carol as Actor;
    await sharedWithFrank('/swapped', { 'in/doc.txt': 'kept for carol' }, 'read');
    await share(a.fs, a.pins, '/swapped/in', 'carol', 'read');
    const carolId = (await a.client.call<{ id: string }>('GET', '/v1/users/carol')).id;
    // Main's own key, given out as carol's: in the subtree's grants only, then also
    // wherever carol's keys are asked for (a lie told consistently).
    const mains = generateIdentity();
    let rekeys = 0;
    const swapping = (everywhere: boolean) =>
      hookCalls(
        a,
        (path) => {
          if (path.endsWith('/rekey')) rekeys++;
        },
        (path, answer) => {
          if (path.includes('/subtree'))
            for (const g of (answer as SubtreeResponse).grants)
              if (g.granteeId === carolId) g.boxKey = mains.boxKey;
          if (everywhere && path === '/v1/users/carol' && answer) {
            (answer as UserKeysResponse).boxKey = mains.boxKey;
            (answer as UserKeysResponse).signKey = mains.signKey;
          }
        },
      );
    let restore = swapping(false);
    try {
      await assert.rejects(unshare(a.fs, a.pins, '/swapped', 'frank'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SEDFS_ERR_KEY_CHANGED');
        assert.match(
          err.message,
          /^frank's access to \/swapped is revoked, but replacing the keys did not finish/,
        );
        assert.match(err.message, /main gave a key for carol other than their pinned one/);
        return true;
      });
    } finally {
      restore();
    }
    restore = swapping(true);
    try {
      await assert.rejects(finishRotations(a.fs, a.pins), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SEDFS_ERR_KEY_CHANGED');
        assert.match(
          err.message,
          /carol's key changed from .* sedfs unshare --finish --accept-new-key carol;/,
        );
        return true;
      });
    } finally {
      restore();
    }
    assert.equal(rekeys, 0, 'no part of the new keys was sent');
    assert.equal(
      (await a.client.call<RotationsResponse>('GET', '/v1/rotations')).rotations.length,
      1,
      'the rotation stays pending',
    );
    // A grantee not pinned yet is pinned as first seen, and the owner is told.
    const notices: string[] = [];
    const fresh = new MemoryPins();
    assert.equal((await finishRotations(a.fs, fresh, { onNotice: (m) => notices.push(m) }))[0]?.nodes, 3);
    assert.equal(fresh.map.carol?.fingerprint, a.pins.map.carol?.fingerprint);
    assert.deepEqual(notices, [
      `pinned carol's key: fingerprint ${a.pins.map.carol?.fingerprint} (they keep a share under /swapped)`,
    ]);
    assert.equal(await text(c.fs, '/shared/alice/in/doc.txt'), 'kept for carol');
  });

  /**
   * Alice's `path` shared with frank and `path/in` with carol; frank's unshare runs with
   * `hook` on alice's calls (it returns what puts them back) and must fail as `failed`
   * checks, leaving the rotation pending; finished without the hook, carol still reads.
   */
  async function unshareFrankWhile(
    path: string,
    hook: (alice: Actor) => () => void,
    failed: (err: Error & { code?: string }) => boolean,
  ): Promise<void> {
    const a = actors.alice as Actor;
    await sharedWithFrank(path, { 'in/doc.txt': 'kept for carol' }, 'read');
    await share(a.fs, a.pins, `${path}/in`, 'carol', 'read');
    const restore = hook(a);
    try {
      await assert.rejects(unshare(a.fs, a.pins, path, 'frank'), failed);
    } finally {
      restore();
    }
    assert.equal((await a.client.call<RotationsResponse>('GET', '/v1/rotations')).rotations.length, 1);
    assert.equal((await finishRotations(a.fs, a.pins))[0]?.nodes, 3);
    assert.equal(await text((actors.carol as Actor).fs, '/shared/alice/in/doc.txt'), 'kept for carol');
  }

  test("an unshare's key rotation seals each kept grant's name afresh: a sealed name main hands it in the subtree is neither signed nor shown", async () => {
    const a = actors.alice as Actor;
    const c = actors.carol as Actor;
    await sharedWithFrank('/renamed', { 'in/doc.txt': 'kept for carol' }, 'read');
    await share(a.fs, a.pins, '/renamed/in', 'carol', 'read');
    const restore = hookCalls(
      a,
      () => undefined,
      (path, answer) => {
        if (!path.includes('/subtree')) return;
        for (const g of (answer as SubtreeResponse).grants)
          g.sealedName = sealTo(g.boxKey, Buffer.from("main's name"), `grant-name:${g.nodeId}`).toString(
            'base64url',
          );
      },
    );
    try {
      await unshare(a.fs, a.pins, '/renamed', 'frank');
    } finally {
      restore();
    }
    const inner = (await a.fs.resolve('/renamed/in')).entry.id;
    const shown = (await c.fs.shares()).filter((s) => s.nodeId === inner).map((s) => s.name);
    assert.deepEqual(shown, ['in']);
    assert.equal(await text(c.fs, '/shared/alice/in/doc.txt'), 'kept for carol');
  });

  test("an unshare's key rotation seals afresh the name of a grant kept on the re-keyed folder itself: its grantee opens it under its own name, not one main hands the rotation", async () => {
    const a = actors.alice as Actor;
    const c = actors.carol as Actor;
    // Carol keeps a grant on the very folder frank is unshared from: the rotation's root.
    const { nodeId: root, carolsGrant } = await keptForCarol('/kept-root', '/kept-root', {
      'doc.txt': 'kept for carol',
    });
    const before = await carolsGrant();
    const handed: string[] = [];
    const restore = hookCalls(
      a,
      () => undefined,
      (path, answer) => {
        if (!path.includes('/subtree')) return;
        for (const g of (answer as SubtreeResponse).grants) {
          g.sealedName = sealTo(g.boxKey, Buffer.from("main's name"), `grant-name:${g.nodeId}`).toString(
            'base64url',
          );
          if (g.nodeId === root) handed.push(g.sealedName);
        }
      },
    );
    try {
      await unshare(a.fs, a.pins, '/kept-root', 'frank');
    } finally {
      restore();
    }
    assert.equal(handed.length, 1, "main handed the rotation a name for carol's grant on the folder");
    const after = await carolsGrant();
    assert.ok((after.signedAt as number) > (before.signedAt as number), 'the grant was replaced');
    assert.notEqual(after.sealedName, handed[0], "not main's sealed name");
    assert.notEqual(after.sealedName, before.sealedName, 'nor the one from before: sealed afresh');
    assert.equal(after.name, 'kept-root');
    assert.equal(await text(c.fs, '/shared/alice/kept-root/doc.txt'), 'kept for carol');
  });

  test("main refuses a part of an unshare's new keys whose grant is not signed with the owner's key, and the rotation stays pending until one that is", async () => {
    const other = generateIdentity();
    await unshareFrankWhile(
      '/resigned',
      (a) =>
        hookCalls(a, (path, body) => {
          if (!path.endsWith('/rekey')) return;
          for (const g of (body as { grants: { nodeId: string; sealedKey: string; signature: string }[] })
            .grants)
            g.signature = signGrant(other, {
              nodeId: g.nodeId,
              sealedKey: g.sealedKey,
              sealedName: 'AAAA',
              signedAt: Date.now(),
            });
        }),
      (err) => {
        assert.equal(err.code, 'SEDFS_ERR_REKEY_PENDING');
        assert.match(err.message, /the new key of a grant on [0-9a-f]{32} is not signed with your key/);
        return true;
      },
    );
  });

  test("a grant older than the latest one its grantee has seen of a share (main handing back the grant an unshare's rotation replaced) is left out saying so, and the latest still opens", async () => {
    const a = actors.alice as Actor;
    const c = actors.carol as Actor;
    await sharedWithFrank('/rolled', { 'doc.txt': 'written before the unshare' }, 'read');
    await share(a.fs, a.pins, '/rolled', 'carol', 'write');
    const pins = new MemoryPins();
    const fs = await FileSystem.open(c.client, c.identity, { pins });
    const skipped: string[] = [];
    fs.onSkipped = (m) => skipped.push(m);
    const rolledOf = async () => (await fs.shares()).find((s) => s.name === 'rolled');
    const before = (await rolledOf()) as ShareEntry;
    assert.ok(before.signedAt, 'a new grant is dated');

    await unshare(a.fs, a.pins, '/rolled', 'frank');
    const after = (await rolledOf()) as ShareEntry;
    assert.notEqual(after.sealedKey, before.sealedKey, 'the rotation sealed carol the new key');
    assert.ok(
      (after.signedAt as number) > (before.signedAt as number),
      'and dated it after the grant it replaced',
    );

    // Main hands back the grant from before the unshare, signed by alice as it was.
    const restore = hookCalls(
      c,
      () => undefined,
      (path, answer) => {
        // Saying carol is another user id, too, changes nothing: what she saw is kept by her own key.
        if (path === '/v1/me') (answer as { id: string }).id = randomHexId();
        if (path !== '/v1/shares') return;
        const s = (answer as { shares: ShareEntry[] }).shares.find(
          (x) => x.nodeId === before.nodeId,
        ) as ShareEntry;
        Object.assign(s, {
          sealedKey: before.sealedKey,
          sealedName: before.sealedName,
          signature: before.signature,
          signedAt: before.signedAt,
        });
      },
    );
    try {
      assert.equal(await rolledOf(), undefined);
      const reopened = await FileSystem.open(c.client, c.identity, { pins });
      assert.equal(
        (await reopened.shares()).find((s) => s.name === 'rolled'),
        undefined,
      );
    } finally {
      restore();
    }
    const iso = (ms: number | undefined) => new Date(ms as number).toISOString();
    assert.deepEqual(skipped, [
      `a share from alice was left out: main shows a grant of it signed at ${iso(before.signedAt)}, older than one seen here (signed at ${iso(after.signedAt)}): main may be handing back keys an unshare replaced. If alice shared it again from a computer whose clock is behind, or with a sedfs from before 2026-11-29's dated grants, alice can share it again from one whose clock is right, with a current sedfs`,
    ]);
    assert.equal(
      (await rolledOf())?.sealedKey,
      after.sealedKey,
      'told the truth again, the latest grant opens',
    );
    assert.equal(skipped.length, 1);
  });

  test("a grant's date holds back only its own owner's older grants of that share: one from another user (main's, say) dated ahead holds back none of the owner's; one dated over a day ahead, or older than another in the same listing, is left out", async () => {
    const a = actors.alice as Actor;
    const e = actors.erin as Actor;
    const f = actors.frank as Actor; // as if main had made frank up
    await a.fs.mkdir('/dated');
    await share(a.fs, a.pins, '/dated', 'erin', 'read');
    const listing = async (pins: MemoryPins, extra: (ShareEntry | undefined)[] = []) => {
      const fs = await FileSystem.open(e.client, e.identity, { pins });
      const skipped: string[] = [];
      // Dave's shares that do not open (an earlier test's) are left out of every listing.
      fs.onSkipped = (m) => {
        if (!m.startsWith('a share from dave')) skipped.push(m);
      };
      const restore = hookCalls(
        e,
        () => undefined,
        (path, answer) => {
          if (path === '/v1/shares')
            (answer as { shares: ShareEntry[] }).shares.push(...extra.filter((x) => x !== undefined));
        },
      );
      try {
        return { shown: (await fs.shares()).map((s) => `${s.owner}/${s.name}`).sort(), skipped };
      } finally {
        restore();
      }
    };
    const first = (await e.fs.shares()).find((s) => s.name === 'dated') as ShareEntry;
    const nodeId = first.nodeId;
    /** A grant on alice's node, signed by frank, dated `signedAt`. */
    const franks = (signedAt: number): ShareEntry => {
      const grant = {
        nodeId,
        sealedKey: sealTo(e.identity.boxKey, newNodeKey(), `grant:${nodeId}`).toString('base64url'),
        sealedName: sealTo(e.identity.boxKey, Buffer.from('bait'), `grant-name:${nodeId}`).toString(
          'base64url',
        ),
        signedAt,
      };
      return { ...grant, owner: 'frank', kind: 'dir', perm: 'read', signature: signGrant(f.identity, grant) };
    };

    const pins = new MemoryPins();
    const ahead = await listing(pins, [franks(Date.now() + 60 * 60 * 1000)]);
    assert.ok(ahead.shown.includes('alice/dated') && ahead.shown.includes('frank/bait'), ahead.shown.join());
    // Alice shares it again (dated now, before frank's): erin, who saw frank's, still opens it.
    await share(a.fs, a.pins, '/dated', 'erin', 'write');
    const again = await listing(pins);
    assert.ok(again.shown.includes('alice/dated'), again.shown.join());
    assert.deepEqual(again.skipped, []);

    const farAhead = await listing(new MemoryPins(), [franks(Date.now() + 2 * 24 * 60 * 60 * 1000)]);
    assert.ok(!farAhead.shown.includes('frank/bait'));
    assert.equal(farAhead.skipped.length, 1);
    assert.match(
      farAhead.skipped[0] as string,
      /^a share from frank was left out: it is dated at .*, ahead of this computer's clock: frank's clock \(or this one's\) is wrong$/,
    );

    // The grant from before alice shared again, listed beside the latest: never seen
    // before here, it is still older than one in the same listing.
    const both = await listing(new MemoryPins(), [first]);
    assert.equal(both.shown.filter((x) => x === 'alice/dated').length, 1);
    assert.equal(both.skipped.length, 1);
    assert.match(
      both.skipped[0] as string,
      /^a share from alice was left out: main shows a grant of it signed at .*, older than one seen here/,
    );

    // Main refuses an undated grant (a client from before) and one dated before the grant it replaces.
    const erinId = (await a.client.call<UserKeysResponse>('GET', '/v1/users/erin')).id;
    const node = await a.fs.resolve('/dated');
    const grant = {
      nodeId,
      sealedKey: first.sealedKey,
      sealedName: first.sealedName,
      signedAt: first.signedAt as number,
    };
    const post = (body: Record<string, unknown>) =>
      a.client.call('POST', `/v1/nodes/${nodeId}/grants`, {
        grantee: erinId,
        perm: 'read',
        sealedKey: grant.sealedKey,
        sealedName: grant.sealedName,
        expectWrappedKey: node.entry.wrappedKey as string,
        ...body,
      });
    const { signedAt: _, ...undated } = grant;
    await assert.rejects(post({ signature: signGrant(a.identity, { ...undated, signedAt: 1 }) }), {
      code: 'SEDFS_ERR_BAD_REQUEST',
      message: /this sedfs makes undated grants.*upgrade it/,
    });
    await assert.rejects(post({ signature: signGrant(a.identity, grant), signedAt: grant.signedAt }), {
      code: 'SEDFS_ERR_BAD_REQUEST',
      message: /before the one it replaces .*this computer's clock is behind/,
    });
    // The grant erin holds now, sent again as it is, is taken (a request sent again); one
    // of the same date but sealed afresh is not: of two grants of one date, erin, having
    // seen either, would take the other as fresh.
    const latest = (await e.fs.shares()).find((s) => s.name === 'dated') as ShareEntry;
    const same = {
      signature: latest.signature,
      signedAt: latest.signedAt,
      perm: 'write',
      sealedKey: latest.sealedKey,
    };
    await post({ ...same, sealedName: latest.sealedName });
    const resealed = {
      nodeId,
      sealedKey: latest.sealedKey,
      sealedName: sealTo(e.identity.boxKey, Buffer.from('dated'), `grant-name:${nodeId}`).toString(
        'base64url',
      ),
      signedAt: latest.signedAt as number,
    };
    await assert.rejects(
      post({ ...same, sealedName: resealed.sealedName, signature: signGrant(a.identity, resealed) }),
      { code: 'SEDFS_ERR_BAD_REQUEST', message: /the very millisecond of the different one it replaces/ },
    );
  });

  test("main refuses a part of an unshare's new keys whose grant is dated before the one it replaces, is undated, or has no name sealed afresh (a sedfs from before dated grants); the rotation stays pending and the grantee opens the share as before", async () => {
    const a = actors.alice as Actor;
    const c = actors.carol as Actor;
    const { nodeId: inner, carolsGrant } = await keptForCarol('/redated', '/redated/in', {
      'in/doc.txt': 'kept for carol',
    });
    const held = await carolsGrant();
    const heldAt = held.signedAt as number;
    type PartGrant = RekeyRequest['grants'][number];
    /** An undated signature, as a sedfs from before dated grants made one (sedfs-grant-v1). */
    const undated = (g: PartGrant) =>
      signMessage(
        a.identity,
        Buffer.concat(
          ['sedfs-grant-v1', g.nodeId, g.sealedKey, g.sealedName as string].flatMap((f) => {
            const b = Buffer.from(f, 'utf8');
            const n = Buffer.alloc(4);
            n.writeUInt32BE(b.length);
            return [n, b];
          }),
        ),
      );
    // Each made by alice's own client and signed with her key: only what is named is wrong.
    const cases: [string, (g: PartGrant) => void, RegExp][] = [
      [
        'dated before the grant it replaces',
        (g) => {
          g.signedAt = heldAt - 1;
          g.signature = signGrant(a.identity, {
            ...g,
            sealedName: g.sealedName as string,
            signedAt: heldAt - 1,
          });
        },
        /this grant is dated .*, before the one it replaces \(/,
      ],
      [
        'undated',
        (g) => {
          delete g.signedAt;
          g.signature = undated(g);
        },
        /this sedfs makes undated grants.*: upgrade it/,
      ],
      [
        'with no name sealed afresh',
        (g) => {
          delete g.sealedName;
        },
        /this sedfs makes undated grants.*: upgrade it/,
      ],
    ];
    let first = true;
    for (const [what, change, refused] of cases) {
      let changed = 0;
      const restore = hookCalls(a, (path, body) => {
        if (!path.endsWith('/rekey')) return;
        for (const g of (body as RekeyRequest).grants)
          if (g.nodeId === inner) {
            change(g);
            changed++;
          }
      });
      try {
        // The unshare, then (its rotation left pending) unshare --finish.
        const tried = first ? unshare(a.fs, a.pins, '/redated', 'frank') : finishRotations(a.fs, a.pins);
        await assert.rejects(tried, (err: Error & { code?: string }) => {
          assert.equal(err.code, 'SEDFS_ERR_REKEY_PENDING', what);
          assert.match(err.message, refused, what);
          return true;
        });
      } finally {
        restore();
      }
      first = false;
      assert.equal(changed, 1, what);
      assert.equal(
        (await a.client.call<RotationsResponse>('GET', '/v1/rotations')).rotations.length,
        1,
        `${what}: the rotation stays pending`,
      );
      // Nothing of the refused part was installed: carol's grant is the one she held.
      const now = await carolsGrant();
      assert.deepEqual(
        [now.sealedKey, now.sealedName, now.signature, now.signedAt],
        [held.sealedKey, held.sealedName, held.signature, held.signedAt],
        what,
      );
      assert.equal(await text(c.fs, '/shared/alice/in/doc.txt'), 'kept for carol', what);
    }
    assert.equal((await finishRotations(a.fs, a.pins))[0]?.nodes, 3);
    assert.ok(((await carolsGrant()).signedAt as number) > heldAt);
    assert.equal(await text(c.fs, '/shared/alice/in/doc.txt'), 'kept for carol');
  });

  test("a part main refuses ends its attempt: what the attempt sent before is dropped, so the owner's next try begins at once rather than waiting for it to be seen stalled", async () => {
    const a = actors.alice as Actor;
    const c = actors.carol as Actor;
    const files: Record<string, string> = { 'z/in/doc.txt': 'kept for carol' };
    for (let i = 0; i < 8; i++) files[`a${i}/f.txt`] = `file ${i}`;
    const { nodeId: inner, carolsGrant } = await keptForCarol('/parts', '/parts/z/in', files);
    const heldAt = (await carolsGrant()).signedAt as number;
    let partsBefore = 0;
    let refusedOne = false;
    const restore = hookCalls(a, (path, body) => {
      if (!path.endsWith('/rekey')) return;
      const part = body as RekeyRequest;
      const g = part.grants.find((x) => x.nodeId === inner);
      if (!g) {
        if (!refusedOne) partsBefore++;
        return;
      }
      refusedOne = true;
      g.signedAt = heldAt - 1;
      g.signature = signGrant(a.identity, { ...g, sealedName: g.sealedName as string, signedAt: heldAt - 1 });
    });
    try {
      await assert.rejects(unshare(a.fs, a.pins, '/parts', 'frank', '/', { partBytes: 600 }), {
        code: 'SEDFS_ERR_REKEY_PENDING',
        message: /before the one it replaces/,
      });
    } finally {
      restore();
    }
    // Parts went before the refused one, so the attempt was under way when it was refused.
    assert.ok(refusedOne && partsBefore > 0, `${partsBefore} parts before the refused one`);
    const root = (await a.fs.resolve('/parts')).entry.id;
    const pending = (await a.client.call<RotationsResponse>('GET', '/v1/rotations')).rotations.find(
      (r) => r.nodeId === root,
    );
    assert.deepEqual([pending?.attempt, pending?.parts], [null, 0]);
    // Another client (another process of alice's: no attempt of its own yet) finishes it,
    // with a stall limit no test would wait out.
    const done = await finishRotations(a.fs, a.pins, { partBytes: 600, stallMs: 10 * 60_000 });
    assert.ok((done.find((d) => d.path === '/parts')?.nodes ?? 0) > 10, JSON.stringify(done));
    assert.equal(await text(c.fs, '/shared/alice/in/doc.txt'), 'kept for carol');
  });

  test("a grant its own owner signed dated over a day ahead is left out saying so, and holds back none of the owner's current grants of that share", async () => {
    const a = actors.alice as Actor;
    const e = actors.erin as Actor;
    await a.fs.mkdir('/ahead');
    await share(a.fs, a.pins, '/ahead', 'erin', 'read');
    const nodeId = (await a.fs.resolve('/ahead')).entry.id;
    const real = (await e.fs.shares()).find((s) => s.nodeId === nodeId) as ShareEntry;
    // Alice's grant as it is, but signed by alice (a computer of hers whose clock is two days ahead).
    const signedAt = Date.now() + 2 * 24 * 60 * 60 * 1000;
    const grant = { nodeId, sealedKey: real.sealedKey, sealedName: real.sealedName, signedAt };
    const ahead: ShareEntry = { ...real, signedAt, signature: signGrant(a.identity, grant) };

    const pins = new MemoryPins();
    const listing = async (extra: ShareEntry[]) => {
      const fs = await FileSystem.open(e.client, e.identity, { pins });
      const skipped: string[] = [];
      // Only alice's: shares from others that do not open (earlier tests') are left out of every listing.
      fs.onSkipped = (m) => {
        if (m.startsWith('a share from alice')) skipped.push(m);
      };
      const restore = hookCalls(
        e,
        () => undefined,
        (path, answer) => {
          if (path === '/v1/shares') (answer as { shares: ShareEntry[] }).shares.push(...extra);
        },
      );
      try {
        const shown = (await fs.shares()).filter((s) => s.nodeId === nodeId);
        return { shown: shown.map((s) => [s.name, s.signedAt]), skipped };
      } finally {
        restore();
      }
    };
    const beside = await listing([ahead]);
    assert.deepEqual(beside.shown, [['ahead', real.signedAt]], 'the grant main lists beside it opens');
    assert.deepEqual(beside.skipped, [
      `a share from alice was left out: it is dated at ${new Date(signedAt).toISOString()}, ahead of this computer's clock: alice's clock (or this one's) is wrong`,
    ]);
    assert.equal(
      (await pins.grantsSeen(e.identity.signKey))[`${a.identity.signKey}:${nodeId}`],
      real.signedAt,
      'its date is not remembered as seen',
    );

    // Alice shares it again from a computer whose clock is right: a grant dated now, long
    // before the one left out, which erin takes.
    await share(a.fs, a.pins, '/ahead', 'erin', 'write');
    const again = await listing([]);
    assert.equal(again.shown.length, 1);
    assert.ok((again.shown[0]?.[1] as number) > (real.signedAt as number), again.shown.join());
    assert.deepEqual(again.skipped, []);
  });

  test("an unshare from a user with no share on the path fails saying so, even while another folder's key rotation is pending", async () => {
    const a = actors.alice as Actor;
    const c = actors.carol as Actor;
    await sharedWithFrank('/left-pending', { 'doc.txt': 'p' }, 'read');
    await a.fs.mkdir('/reports/q3', { parents: true });
    await a.fs.put([Buffer.from('q3 figures')], '/reports/q3/sum.txt');
    await share(a.fs, a.pins, '/reports/q3', 'carol', 'read');
    assert.equal(await unshareCutShort(a, '/left-pending', 'frank'), 'SEDFS_ERR_REKEY_PENDING');
    try {
      await assert.rejects(unshare(a.fs, a.pins, '/reports', 'carol'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SEDFS_ERR_NOT_FOUND');
        assert.equal(err.message, 'carol has no share on /reports');
        return true;
      });
      assert.equal(await text(c.fs, '/shared/alice/q3/sum.txt'), 'q3 figures');
      const { rotations } = await a.client.call<RotationsResponse>('GET', '/v1/rotations');
      assert.deepEqual(
        rotations.map((r) => r.nodeId),
        [(await a.fs.resolve('/left-pending')).entry.id],
        'the rotation of another folder is left for unshare --finish',
      );
    } finally {
      await finishRotations(a.fs, a.pins);
    }
  });

  test('a subtree whose new keys are too many for one request is re-keyed in parts, installed together by the last', async () => {
    const a = actors.alice as Actor;
    const f = actors.frank as Actor;
    await a.fs.mkdir('/many/d1/d2', { parents: true });
    for (const name of ['x', 'y', 'z'])
      await a.fs.put([Buffer.from(`file ${name}`)], `/many/d1/d2/${name}.txt`);
    await share(a.fs, a.pins, '/many', 'frank', 'read');
    await share(a.fs, a.pins, '/many/d1', 'bob', 'read');
    const d2 = await f.fs.resolve('/shared/alice/many/d1/d2');
    const parts: { done: boolean; nodes: number; grants: number }[] = [];
    const restore = watchCalls(a, (path, body) => {
      if (!path.endsWith('/rekey')) return;
      const b = body as { done: boolean; nodes: unknown[]; grants: unknown[] };
      parts.push({ done: b.done, nodes: b.nodes.length, grants: b.grants.length });
    });
    try {
      // About two nodes' worth of JSON a part.
      assert.deepEqual(await unshare(a.fs, a.pins, '/many', 'frank', '/', { partBytes: 1200 }), {
        nodes: 6,
        sharesInside: 0,
      });
    } finally {
      restore();
    }
    assert.ok(parts.length >= 3, `${parts.length} parts`);
    assert.deepEqual(
      parts.map((p) => p.done),
      [...parts.slice(1).map(() => false), true],
    );
    assert.equal(
      parts.reduce((n, p) => n + p.nodes, 0),
      6,
    );
    assert.equal(
      parts.reduce((n, p) => n + p.grants, 0),
      1,
    );
    for (const name of ['x', 'y', 'z'])
      assert.equal(await text(a.fs, `/many/d1/d2/${name}.txt`), `file ${name}`);
    assert.equal(await text((actors.bob as Actor).fs, '/shared/alice/d1/d2/x.txt'), 'file x');
    const now = await a.fs.resolve('/many/d1/d2');
    assert.throws(() => unwrapNodeKey(d2.key, now.entry.id, now.entry.wrappedKey as string));
  });

  test('an unshare of a subtree larger than a page reads it a page at a time and re-keys every entry in it', async () => {
    const a = actors.alice as Actor;
    const f = actors.frank as Actor;
    const b = actors.bob as Actor;
    await a.fs.mkdir('/paged/empty', { parents: true });
    await a.fs.mkdir('/paged/deep/er/est', { parents: true });
    const files = ['/paged/a.txt', '/paged/deep/b.txt', '/paged/deep/er/est/c.txt', '/paged/z.txt'];
    for (const p of files) await a.fs.put([Buffer.from(`at ${p}`)], p);
    await share(a.fs, a.pins, '/paged', 'frank', 'read');
    await share(a.fs, a.pins, '/paged/deep/er', 'bob', 'read');
    const held = await f.fs.resolve('/shared/alice/paged/deep/er/est/c.txt');
    const pages: number[] = [];
    const restore = hookCalls(
      a,
      () => undefined,
      (path, answer) => {
        if (path.includes('/subtree') && answer) pages.push((answer as { nodes: unknown[] }).nodes.length);
      },
    );
    try {
      assert.deepEqual(await unshare(a.fs, a.pins, '/paged', 'frank', '/', { pageNodes: 2 }), {
        nodes: 9,
        sharesInside: 0,
      });
    } finally {
      restore();
    }
    assert.ok(pages.length >= 5, `${pages.length} pages`);
    assert.ok(
      pages.every((n) => n <= 2),
      `pages of ${pages.join(', ')} nodes`,
    );
    assert.equal(
      pages.reduce((n, p) => n + p, 0),
      9,
    );
    for (const p of files) assert.equal(await text(a.fs, p), `at ${p}`);
    assert.deepEqual((await a.fs.list('/paged')).map((e) => e.name).sort(), [
      'a.txt',
      'deep',
      'empty',
      'z.txt',
    ]);
    assert.equal(await text(b.fs, '/shared/alice/er/est/c.txt'), 'at /paged/deep/er/est/c.txt');
    const now = await a.fs.resolve('/paged/deep/er/est/c.txt');
    const est = await a.fs.resolve('/paged/deep/er/est');
    assert.throws(() => unwrapNodeKey(held.key, now.entry.id, now.entry.wrappedKey as string));
    assert.ok(unwrapNodeKey(est.key, now.entry.id, now.entry.wrappedKey as string));
    assert.equal(await outcome(() => f.fs.list('/shared/alice/paged')), 'SEDFS_ERR_NOT_FOUND');
  });

  test('a grant taken away between two pages of an unshare makes its key rotation start again from the subtree as it is', async () => {
    const a = actors.alice as Actor;
    const f = actors.frank as Actor;
    const b = actors.bob as Actor;
    await a.fs.mkdir('/turning/inner', { parents: true });
    for (const p of ['/turning/1.txt', '/turning/inner/2.txt', '/turning/inner/3.txt'])
      await a.fs.put([Buffer.from(p)], p);
    await share(a.fs, a.pins, '/turning', 'frank', 'read');
    await share(a.fs, a.pins, '/turning/inner', 'bob', 'read');
    const inner = await a.fs.resolve('/turning/inner');
    const bobs = await b.fs.resolve('/shared/alice/inner/2.txt');
    const bobId = (await a.client.call<{ id: string }>('GET', '/v1/users/bob')).id;
    let starts = 0;
    let seenGrant = false;
    let revoked = false;
    const rawCall = a.client.call.bind(a.client);
    const restore = hookCalls(
      a,
      async (path) => {
        if (path.endsWith('/subtree') || path.includes('/subtree?limit')) starts++;
        // Bob's share inside is taken away (an unshare of it from elsewhere) once the page
        // holding its grant was read, before anything else.
        if (seenGrant && !revoked) {
          revoked = true;
          await rawCall('POST', `/v1/nodes/${inner.entry.id}/unshare`, { grantee: bobId });
        }
      },
      (path, answer) => {
        const grants = path.includes('/subtree') && answer ? (answer as SubtreeResponse).grants : [];
        if (grants.some((g) => g.nodeId === inner.entry.id)) seenGrant = true;
      },
    );
    try {
      assert.equal((await unshare(a.fs, a.pins, '/turning', 'frank', '/', { pageNodes: 2 })).nodes, 5);
    } finally {
      restore();
    }
    assert.ok(revoked);
    assert.equal(starts, 2, 'read again from the start once');
    assert.deepEqual((await a.client.call<{ rotations: unknown[] }>('GET', '/v1/rotations')).rotations, []);
    for (const p of ['/turning/1.txt', '/turning/inner/2.txt', '/turning/inner/3.txt'])
      assert.equal(await text(a.fs, p), p);
    assert.equal(await outcome(() => b.fs.list('/shared/alice/inner')), 'SEDFS_ERR_NOT_FOUND');
    assert.equal(await outcome(() => f.fs.list('/shared/alice/turning')), 'SEDFS_ERR_NOT_FOUND');
    const now = await a.fs.resolve('/turning/inner/2.txt');
    assert.throws(() => unwrapNodeKey(bobs.key, now.entry.id, now.entry.wrappedKey as string));
  });

  test('two clients finishing one key rotation at once (an inner unshare and unshare --finish elsewhere) reach one end: every entry readable by those who keep access, not by the revoked', async () => {
    const a = actors.alice as Actor;
    const f = actors.frank as Actor;
    const b = actors.bob as Actor;
    const c = actors.carol as Actor;
    // Alice's second machine.
    const client2 = cluster.newClient();
    await login(client2, 'alice', a.identity);
    const a2: Actor = { ...a, client: client2, fs: await FileSystem.open(client2, a.identity) };
    try {
      await a.fs.mkdir('/clash/inner/deeper', { parents: true });
      const files = [
        '/clash/top.txt',
        '/clash/inner/mid.txt',
        '/clash/inner/deeper/low.txt',
        '/clash/inner/x.txt',
      ];
      for (const p of files) await a.fs.put([Buffer.from(`at ${p}`)], p);
      await share(a.fs, a.pins, '/clash', 'frank', 'write');
      await share(a.fs, a.pins, '/clash/inner', 'bob', 'read');
      await share(a.fs, a.pins, '/clash/inner', 'carol', 'read');
      const frankHeld = await f.fs.resolve('/shared/alice/clash/inner/deeper/low.txt');
      const bobHeld = await b.fs.resolve('/shared/alice/inner/deeper/low.txt');
      // The unshare of /clash from frank is cut short after its first part of new keys.
      let rekeys = 0;
      let cutShort: string | undefined;
      const restore = watchCalls(a, (path, body) => {
        if (!path.endsWith('/rekey')) return;
        cutShort ??= (body as { attempt: string }).attempt;
        if (++rekeys === 2) throw new Error('connection lost');
      });
      try {
        assert.equal(
          await outcome(() => unshare(a.fs, a.pins, '/clash', 'frank', '/', { partBytes: 600 })),
          'SEDFS_ERR_REKEY_PENDING',
        );
      } finally {
        restore();
      }
      // Then, at once: alice unshares /clash/inner from bob on this machine (main answers
      // with the pending rotation of /clash, which that unshare then finishes), and runs
      // `unshare --finish` on the other. Both take over the attempt cut short once it has
      // sent nothing for the stall limit. Their parts of new keys interleave: the second
      // machine's first part goes after this one's first, so main refuses it (this one
      // took the rotation over first), and this one's second goes after that.
      // The stall limit is well above any pause between one client's parts on a loaded
      // machine (300 ms was not, once, in CI: the second machine took this one's attempt
      // over between its parts), as both wait it out once before taking over.
      const small = { partBytes: 600, pageNodes: 2, pollMs: 50, stallMs: 2000 };
      let firstHere!: () => void;
      let firstThere!: () => void;
      const hereSent = new Promise<void>((r) => {
        firstHere = r;
      });
      const thereSent = new Promise<void>((r) => {
        firstThere = r;
      });
      const sent: { here: unknown[]; there: unknown[] } = { here: [], there: [] };
      const gate = (actor: Actor, log: unknown[], mine: () => void, theirs: Promise<void>, wait: number) => {
        let parts = 0;
        return hookCalls(
          actor,
          async (path, body) => {
            if (!path.endsWith('/rekey')) return;
            if (++parts === wait) await theirs;
            log.push({ replacing: (body as { replacing?: unknown }).replacing });
          },
          (path, _answer, error) => {
            if (!path.endsWith('/rekey')) return;
            Object.assign(log[log.length - 1] as object, { refused: (error as { code?: string })?.code });
            if (parts === 1) mine();
          },
        );
      };
      const undoHere = gate(a, sent.here, firstHere, thereSent, 2);
      const undoThere = gate(a2, sent.there, firstThere, hereSent, 1);
      let results: PromiseSettledResult<unknown>[];
      try {
        results = await Promise.allSettled([
          unshare(a.fs, a.pins, '/clash/inner', 'bob', '/', small),
          finishRotations(a2.fs, a2.pins, small),
        ]);
      } finally {
        undoHere();
        undoThere();
      }
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'fulfilled'],
        String(results.map((r) => (r.status === 'rejected' ? r.reason : '')).join(' ')),
      );
      // The path claimed: both took over from the attempt cut short, main refused the
      // second machine's part as taken over, and it waited for this one to finish.
      assert.ok(cutShort);
      assert.deepEqual(sent.here[0], { replacing: cutShort, refused: undefined });
      assert.ok(
        sent.here.length > 1 && sent.here.every((p) => (p as { refused?: string }).refused === undefined),
        // Twice seen failing in CI only: what each client sent, to tell why next time.
        JSON.stringify(sent),
      );
      assert.deepEqual(sent.there, [{ replacing: cutShort, refused: 'SEDFS_ERR_REKEY_TAKEN_OVER' }]);
      const [here, there] = results.map((r) => (r as PromiseFulfilledResult<unknown>).value);
      assert.equal((here as { byAnother?: true }).byAnother, undefined);
      assert.ok((here as { nodes: number }).nodes > 0);
      assert.deepEqual(there, [{ path: '/clash', nodes: 0, byAnother: true }]);
      assert.deepEqual((await a.client.call<{ rotations: unknown[] }>('GET', '/v1/rotations')).rotations, []);
      for (const p of files) assert.equal(await text(a.fs, p), `at ${p}`);
      assert.equal(await text(c.fs, '/shared/alice/inner/deeper/low.txt'), 'at /clash/inner/deeper/low.txt');
      assert.equal(await outcome(() => f.fs.list('/shared/alice/clash')), 'SEDFS_ERR_NOT_FOUND');
      assert.equal(await outcome(() => b.fs.list('/shared/alice/inner')), 'SEDFS_ERR_NOT_FOUND');
      const low = await a.fs.resolve('/clash/inner/deeper/low.txt');
      for (const held of [frankHeld, bobHeld])
        assert.throws(() => unwrapNodeKey(held.key, low.entry.id, low.entry.wrappedKey as string));
      await a.fs.put([Buffer.from('written after')], '/clash/inner/deeper/low.txt');
      assert.equal(await text(c.fs, '/shared/alice/inner/deeper/low.txt'), 'written after');
    } finally {
      await client2.close();
    }
  });

  test('a client finding another attempt at the key rotation still sending parts waits for it, saying so, and takes nothing over', async () => {
    const a = actors.alice as Actor;
    const client2 = cluster.newClient();
    await login(client2, 'alice', a.identity);
    const a2: Actor = { ...a, client: client2, fs: await FileSystem.open(client2, a.identity) };
    try {
      const files: Record<string, string> = {};
      for (const n of [1, 2, 3, 4, 5, 6]) files[`f${n}.txt`] = `file ${n}`;
      await sharedWithFrank('/slowly', files, 'read');
      assert.equal(await unshareCutShort(a, '/slowly', 'frank'), 'SEDFS_ERR_REKEY_PENDING');
      // The other machine sends its parts slowly: each well within the stall limit (with
      // room for a loaded machine's pauses), all of them together well over it (seven
      // parts, six of them after the first: 1.8 s of pauses alone).
      let first!: () => void;
      const begun = new Promise<void>((r) => {
        first = r;
      });
      let slowParts = 0;
      const undoSlow = hookCalls(
        a2,
        async (path) => {
          if (path.endsWith('/rekey')) await sleep(300);
        },
        (path) => {
          if (path.endsWith('/rekey') && ++slowParts === 1) first();
        },
      );
      let mine = 0;
      const undoMine = watchCalls(a, (path) => {
        if (path.endsWith('/rekey')) mine++;
      });
      const notices: string[] = [];
      try {
        const other = finishRotations(a2.fs, a2.pins, { partBytes: 600 });
        await begun;
        const started = Date.now();
        const here = await finishRotations(a.fs, a.pins, {
          pollMs: 20,
          stallMs: 1200,
          onNotice: (m) => notices.push(m),
        });
        assert.ok(Date.now() - started > 1200, 'the other attempt went on for longer than the stall limit');
        assert.deepEqual(here, [{ path: '/slowly', nodes: 0, byAnother: true }]);
        assert.deepEqual(await other, [{ path: '/slowly', nodes: 7 }]);
      } finally {
        undoSlow();
        undoMine();
      }
      assert.ok(slowParts > 3);
      assert.equal(mine, 0, 'no part sent while the other attempt went on');
      assert.deepEqual(notices, [
        'waiting for another unshare finishing the keys under /slowly… (taken over if it sends nothing for 2 s)',
      ]);
      assert.equal(await text(a.fs, '/slowly/f6.txt'), 'file 6');
    } finally {
      await client2.close();
    }
  });

  // The timeout turns a client that never takes back over (waiting for good) into a failure.
  test('a client whose key rotation was taken over by one that then stops takes it back over and finishes it', {
    timeout: 60_000,
  }, async () => {
    const a = actors.alice as Actor;
    const f = actors.frank as Actor;
    await sharedWithFrank('/stalled', { 'a.txt': 'a', 'sub/b.txt': 'b', 'sub/c.txt': 'c' }, 'read');
    const held = await f.fs.resolve('/shared/alice/stalled/sub/b.txt');
    assert.equal(await unshareCutShort(a, '/stalled', 'frank'), 'SEDFS_ERR_REKEY_PENDING');
    const rawCall = a.client.call.bind(a.client);
    let parts = 0;
    let stalledAt: string | undefined;
    const replaced: unknown[] = [];
    const restore = hookCalls(a, async (path, body) => {
      if (!path.endsWith('/rekey')) return;
      replaced.push((body as { replacing?: string }).replacing);
      if (++parts !== 2) return;
      // Another client takes the rotation over from this one's attempt, sends one part
      // and is gone.
      const { rotations } = await rawCall<RotationsResponse>('GET', '/v1/rotations');
      const pending = rotations.find((r) => path.includes(r.nodeId));
      stalledAt = randomHexId();
      await rawCall('POST', path, {
        attempt: stalledAt,
        replacing: pending?.attempt,
        done: false,
        nodes: [],
        grants: [],
      });
    });
    let done: Awaited<ReturnType<typeof finishRotations>>;
    try {
      done = await finishRotations(a.fs, a.pins, { partBytes: 600, pollMs: 20, stallMs: 200 });
    } finally {
      restore();
    }
    assert.ok(stalledAt);
    assert.ok(replaced.includes(stalledAt), 'taken back over from the attempt that stopped');
    assert.deepEqual(done, [{ path: '/stalled', nodes: 5 }]);
    assert.deepEqual((await a.client.call<RotationsResponse>('GET', '/v1/rotations')).rotations, []);
    for (const [p, body] of [
      ['/stalled/a.txt', 'a'],
      ['/stalled/sub/b.txt', 'b'],
      ['/stalled/sub/c.txt', 'c'],
    ])
      assert.equal(await text(a.fs, p as string), body);
    const now = await a.fs.resolve('/stalled/sub/b.txt');
    assert.throws(() => unwrapNodeKey(held.key, now.entry.id, now.entry.wrappedKey as string));
  });

  test('a big body for a route that takes one is refused before main reads it, unless the caller owns what the URL names', async () => {
    const a = actors.alice as Actor;
    const { uploadId } = await a.client.beginUpload();
    const url = new URL(cluster.mainUrl);
    const total = 12 * 1024 * 1024;
    const piece = Buffer.alloc(1024 * 1024, 0x20);
    /** Sends `total` bytes a piece at a time, each after round trips to main; resolves with what was sent before the answer. */
    const send = (who: Actor, path: string) =>
      new Promise<{ status: number | undefined; sent: number }>((resolve, reject) => {
        let sent = 0;
        let answer: { status: number | undefined; sent: number } | undefined;
        const req = httpsRequest({
          host: url.hostname,
          port: url.port,
          method: 'POST',
          path,
          ca: cluster.ca,
          headers: {
            'content-type': 'application/json',
            'content-length': total,
            authorization: `Bearer ${who.client.token}`,
          },
        });
        req.on('response', (res) => {
          answer = { status: res.statusCode, sent };
          res.resume();
          req.destroy();
          resolve(answer);
        });
        req.on('error', (err) => {
          if (!answer) reject(err);
        });
        req.flushHeaders();
        // The connection's handshake first: under load it can take longer than the round
        // trips below, and a piece written before main saw the headers races its answer.
        const connected = new Promise<void>((ok) =>
          req.once('socket', (socket) => {
            if ((socket as import('node:tls').TLSSocket).encrypted && socket.connecting)
              socket.once('secureConnect', () => ok());
            else ok();
          }),
        );
        void (async () => {
          await connected;
          while (sent < total) {
            // Main has handled what it was sent before by the time it answers these, and
            // this side has had turns to read main's answer, if there is one.
            for (let i = 0; i < 3; i++) await who.client.call('GET', '/v1/me');
            if (answer) return;
            req.write(piece);
            sent += piece.length;
          }
          req.end();
        })().catch(reject);
      });
    const carol = actors.carol as Actor;
    const dave = actors.dave as Actor;
    for (const [who, path, status] of [
      [carol, `/v1/nodes/${folderId}/rekey`, 403],
      [dave, `/v1/nodes/${folderId}/rekey`, 404],
      [carol, `/v1/uploads/${uploadId}/commit`, 404],
      [dave, `/v1/uploads/${uploadId}/commit-files`, 404],
    ] as const) {
      const answer = await send(who, path);
      assert.equal(answer.status, status, path);
      assert.ok(answer.sent < total, `${path}: answered after ${answer.sent} of ${total} bytes`);
    }
  });

  test('a lock deep inside a folder keeps a writer from deleting or moving the folder, or any folder above the lock, with who and until when', async () => {
    const a = actors.alice as Actor;
    const carol = actors.carol as Actor;
    await a.fs.mkdir('/proj/deep/a/b', { parents: true });
    await a.fs.put([Buffer.from('deep')], '/proj/deep/a/b/held.txt');
    await a.fs.put([Buffer.from('free')], '/proj/deep/free.txt');
    await lock(a.fs, '/proj/deep/a/b/held.txt', 60);
    const base = '/shared/alice/proj';
    for (const op of [
      () => carol.fs.rm(`${base}/deep`, { recursive: true }),
      () => carol.fs.rm(`${base}/deep/a`, { recursive: true }),
      () => carol.fs.mv(`${base}/deep`, `${base}/deeper`),
      () => carol.fs.mv(`${base}/deep/a`, `${base}/a-moved`),
    ]) {
      await assert.rejects(op(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SEDFS_ERR_LOCKED');
        assert.match(err.message, /^something inside is locked by alice until \d{4}-\d\d-\d\dT/);
        return true;
      });
    }
    assert.equal(await text(a.fs, '/proj/deep/a/b/held.txt'), 'deep', 'nothing was deleted');
    // What holds no lock below it is not held up, and the holder is not held up by her own lock.
    await carol.fs.rm(`${base}/deep/free.txt`);
    await a.fs.mv('/proj/deep', '/proj/deep2');
    await unlock(a.fs, '/proj/deep2/a/b/held.txt');
    await carol.fs.rm(`${base}/deep2`, { recursive: true });
    assert.equal(await a.fs.find('/proj/deep2'), undefined);
  });

  test("a folder cannot be locked over another user's lock inside it: that lock's holder keeps the file", async () => {
    const a = actors.alice as Actor;
    const carol = actors.carol as Actor;
    await a.fs.mkdir('/proj/leased/in', { parents: true });
    await a.fs.put([Buffer.from('v1')], '/proj/leased/in/f.txt');
    const base = '/shared/alice/proj/leased';
    await lock(carol.fs, `${base}/in/f.txt`, 600);
    for (const folder of ['/proj/leased/in', '/proj/leased', '/proj']) {
      await assert.rejects(lock(a.fs, folder, 60), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SEDFS_ERR_LOCKED');
        assert.match(err.message, /^something inside is locked by carol until \d{4}-\d\d-\d\dT/);
        return true;
      });
    }
    await carol.fs.put([Buffer.from('v2')], `${base}/in/f.txt`);
    // Her own lock inside does not hold carol up; once it is gone, the folder locks.
    await lock(carol.fs, `${base}/in`, 60);
    await unlock(carol.fs, `${base}/in`);
    await unlock(carol.fs, `${base}/in/f.txt`);
    await lock(a.fs, '/proj/leased', 60);
    await unlock(a.fs, '/proj/leased');
    assert.equal(await text(a.fs, '/proj/leased/in/f.txt'), 'v2');
    await a.fs.rm('/proj/leased', { recursive: true });
  });

  test('a lock or unlock whose audit line cannot be written is refused, and changes nothing', async () => {
    const { mkdirSync, renameSync, rmdirSync } = await import('node:fs');
    const { join } = await import('node:path');
    const a = actors.alice as Actor;
    const carol = actors.carol as Actor;
    await a.fs.put([Buffer.from('v1')], '/proj/audited.txt');
    const theirs = '/shared/alice/proj/audited.txt';
    const audit = join(cluster.mainData, 'audit.log');
    /** Runs `op` while main's audit log cannot be appended to (a folder stands in its place). */
    const unaudited = async (op: () => Promise<unknown>) => {
      renameSync(audit, `${audit}.kept`);
      mkdirSync(audit);
      try {
        await assert.rejects(op());
      } finally {
        rmdirSync(audit);
        renameSync(`${audit}.kept`, audit);
      }
    };
    await unaudited(() => lock(a.fs, '/proj/audited.txt', 60));
    await carol.fs.put([Buffer.from('v2')], theirs);
    await lock(a.fs, '/proj/audited.txt', 60);
    await unaudited(() => unlock(a.fs, '/proj/audited.txt'));
    await assert.rejects(carol.fs.put([Buffer.from('v3')], theirs), { code: 'SEDFS_ERR_LOCKED' });
    await unlock(a.fs, '/proj/audited.txt');
    await a.fs.rm('/proj/audited.txt');
  });

  test('a node id already in use is refused alike whoever owns the node: 409 on mkdir and on commit, never a 500', async () => {
    const bob = actors.bob as Actor;
    const home = await bob.fs.resolve('/');
    const own = (await bob.fs.mkdir('/mine')).entry.id;
    let n = 0;
    // Each attempt under a fresh name, so only the id can clash.
    const child = (id: string) => {
      const name = `clash-${n++}`;
      return {
        nodeId: id,
        nameMac: nameMac(home.key, name),
        nameEnc: encryptName(home.key, home.entry.id, id, name),
        wrappedKey: wrapNodeKey(home.key, id, newNodeKey()),
      };
    };
    const refusal = async (op: () => Promise<unknown>) => {
      try {
        await op();
      } catch (err) {
        const { code, status, message } = err as { code: string; status: number; message: string };
        return { code, status, message };
      }
      assert.fail('the id was taken, yet it was accepted');
    };
    const mkdirWith = (id: string) => {
      const { nodeId, ...rest } = child(id);
      return bob.client.call('POST', `/v1/nodes/${home.entry.id}/children`, { id: nodeId, ...rest });
    };
    const commitWith = async (id: string) => {
      const { uploadId } = await bob.client.beginUpload();
      const versionId = randomHexId();
      return bob.client.commit(uploadId, [], {
        versionId,
        size: 0,
        chunkBytes: 65536,
        contentKey: wrapContentKey(newNodeKey(), versionId, newNodeKey()),
        target: { parentId: home.entry.id, ...child(id) },
      });
    };
    for (const op of [mkdirWith, commitWith]) {
      const others = await refusal(() => op(folderId)); // alice's folder, which bob cannot see
      const mine = await refusal(() => op(own));
      assert.equal(others.code, 'SEDFS_ERR_EXISTS');
      assert.equal(others.status, 409);
      assert.deepEqual(others, mine, 'the same answer as for his own node');
    }
  });

  test('a put that overlaps an unshare lands under the new keys; a mkdir, move or share made under the old ones is refused', async () => {
    const a = actors.alice as Actor;
    await a.fs.mkdir('/race/sub', { parents: true });
    await a.fs.put([Buffer.from('v1')], '/race/f.txt');
    await share(a.fs, a.pins, '/race', 'dave', 'read');
    // Each put starts (its keys opened, its first piece sealed) and waits, mid-source,
    // while the folder is unshared and so re-keyed.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    async function* slowSource() {
      yield Buffer.from('v2 ');
      await gate;
      yield Buffer.from('written across an unshare');
    }
    const overwrite = outcome(() => a.fs.put(slowSource(), '/race/f.txt'));
    const create = outcome(() => a.fs.put(slowSource(), '/race/new.txt'));
    const staleFolder = await a.fs.resolve('/race/sub');
    const staleParent = await a.fs.resolve('/race');
    await sleep(100);
    await unshare(a.fs, a.pins, '/race', 'dave');
    release();
    // Main refused each commit under the old keys; the puts opened the new ones and
    // committed again, without sending their chunks again.
    assert.equal(await overwrite, 'ok');
    assert.equal(await create, 'ok');
    assert.equal(await text(a.fs, '/race/f.txt'), 'v2 written across an unshare');
    assert.equal(await text(a.fs, '/race/new.txt'), 'v2 written across an unshare');
    // A folder made, or a node moved, under keys read before the unshare: refused alike.
    const id = randomHexId();
    const stale = {
      id,
      nameMac: nameMac(staleParent.key, 'late'),
      nameEnc: encryptName(staleParent.key, staleParent.entry.id, id, 'late'),
      wrappedKey: wrapNodeKey(staleParent.key, id, newNodeKey()),
      expectParentWrappedKey: staleParent.entry.wrappedKey as string,
    };
    assert.equal(
      await outcome(() => a.client.call('POST', `/v1/nodes/${staleParent.entry.id}/children`, stale)),
      'SEDFS_ERR_VERSION_CONFLICT',
    );
    // A share sealing a key read before the unshare: the grantee could not open the folder.
    const erin = (await a.client.call<{ id: string }>('GET', '/v1/users/erin')).id;
    assert.equal(
      await outcome(() =>
        a.client.call('POST', `/v1/nodes/${staleFolder.entry.id}/grants`, {
          grantee: erin,
          perm: 'read',
          sealedKey: 'c2VhbGVk',
          sealedName: 'bmFtZQ',
          signature: 'A'.repeat(86),
          expectWrappedKey: staleFolder.entry.wrappedKey as string,
        }),
      ),
      'SEDFS_ERR_VERSION_CONFLICT',
    );
    const home = await a.fs.resolve('/');
    assert.equal(
      await outcome(() =>
        a.client.call('POST', `/v1/nodes/${staleFolder.entry.id}/move`, {
          parentId: home.entry.id,
          nameMac: nameMac(home.key, 'sub-moved'),
          nameEnc: encryptName(home.key, home.entry.id, staleFolder.entry.id, 'sub-moved'),
          wrappedKey: wrapNodeKey(home.key, staleFolder.entry.id, staleFolder.key),
          expectWrappedKey: staleFolder.entry.wrappedKey as string,
        }),
      ),
      'SEDFS_ERR_VERSION_CONFLICT',
    );
    // Nothing unreadable was kept, and the same calls made afresh land.
    assert.deepEqual(
      (await a.fs.list('/race')).map((e) => e.name),
      ['f.txt', 'new.txt', 'sub'],
    );
    await a.fs.mkdir('/race/late');
    await a.fs.mv('/race/sub', '/sub-moved');
    assert.deepEqual(
      (await a.fs.list('/race')).map((e) => e.name),
      ['f.txt', 'late', 'new.txt'],
    );
  });

  test('a get of a file opened before an unshare re-keyed it opens the new keys and reads it', async () => {
    const a = actors.alice as Actor;
    await a.fs.mkdir('/rekeyed');
    await a.fs.put([Buffer.from('read across a re-key')], '/rekeyed/f.txt');
    await share(a.fs, a.pins, '/rekeyed', 'dave', 'read');
    const stale = await a.fs.resolve('/rekeyed/f.txt');
    await unshare(a.fs, a.pins, '/rekeyed', 'dave');
    const out = collector();
    await a.fs.get(stale, out.sink);
    assert.equal(out.bytes().toString(), 'read across a re-key');
  });

  test('a writer shared the folder again to read only loses the locks they held in it', async () => {
    const a = actors.alice as Actor;
    const d = actors.dave as Actor;
    await a.fs.mkdir('/downgrade');
    await a.fs.put([Buffer.from('v1')], '/downgrade/f.txt');
    await share(a.fs, a.pins, '/downgrade', 'dave', 'write');
    await lock(d.fs, '/shared/alice/downgrade/f.txt', 3600);
    await share(a.fs, a.pins, '/downgrade', 'dave', 'read');
    await a.fs.put([Buffer.from('v2')], '/downgrade/f.txt');
    assert.equal(await text(a.fs, '/downgrade/f.txt'), 'v2');
  });

  test('an unshare says what access the user keeps through their other shares, above the node and inside it', async () => {
    const a = actors.alice as Actor;
    await a.fs.mkdir('/layers/inner', { parents: true });
    await share(a.fs, a.pins, '/layers', 'erin', 'read');
    await share(a.fs, a.pins, '/layers/inner', 'erin', 'write');
    const inner = await unshare(a.fs, a.pins, '/layers/inner', 'erin');
    assert.equal(inner.stillHas, 'read', 'still readable through the share of /layers');
    assert.equal(inner.sharesInside, 0);
    await share(a.fs, a.pins, '/layers/inner', 'erin', 'write');
    const outer = await unshare(a.fs, a.pins, '/layers', 'erin');
    assert.equal(outer.stillHas, undefined);
    assert.equal(outer.sharesInside, 1, 'the share of /layers/inner stays');
  });

  test('small files put at once across an unshare land under the new keys', async () => {
    const a = actors.alice as Actor;
    await a.fs.mkdir('/race2');
    await share(a.fs, a.pins, '/race2', 'dave', 'read');
    // The unshare lands between the files' upload and their one commit.
    const commitFiles = a.client.commitFiles.bind(a.client);
    let unshared = false;
    a.client.commitFiles = async (...args) => {
      if (!unshared) {
        unshared = true;
        await unshare(a.fs, a.pins, '/race2', 'dave');
      }
      return commitFiles(...args);
    };
    try {
      await a.fs.putMany('/race2', [
        { name: 'm1.txt', data: Buffer.from('one') },
        { name: 'm2.txt', data: Buffer.from('two') },
      ]);
    } finally {
      a.client.commitFiles = commitFiles;
    }
    assert.ok(unshared);
    assert.equal(await text(a.fs, '/race2/m1.txt'), 'one');
    assert.equal(await text(a.fs, '/race2/m2.txt'), 'two');
  });

  test('the audit log records logins, shares, unshares, locks and denials, by id only', async () => {
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const lines = readFileSync(join(cluster.mainData, 'audit.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string });
    const events = new Set(lines.map((l) => l.event));
    for (const e of ['login', 'share', 'unshare', 'lock', 'denied']) assert.ok(events.has(e), e);
    const raw = readFileSync(join(cluster.mainData, 'audit.log'), 'utf8');
    for (const secret of ['alice', 'proj', 'note.txt', 'project notes'])
      assert.ok(!raw.includes(secret), secret);
  });
});
