import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { AuditLog } from '../../../src/main-server/audit.js';
import type { BlobService } from '../../../src/main-server/blob-service.js';
import { type InstallOptions, NamespaceService } from '../../../src/main-server/namespace.js';
import type { NodeRecord, UserRecord } from '../../../src/main-server/store/namespace-store.js';
import { SqliteNamespaceStore } from '../../../src/main-server/store/sqlite-namespace-store.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';
import type { RekeyRequest } from '../../../src/protocol/namespace-api.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-install-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (n: number, len = 32) => n.toString(16).padStart(len, '0');
const OWNER = hex(100);

const node = (id: number, parent: number | null, kind: 'dir' | 'file'): NodeRecord => ({
  id: hex(id),
  ownerId: OWNER,
  parentId: parent === null ? null : hex(parent),
  kind,
  nameMac: parent === null ? null : hex(id, 64),
  nameEnc: parent === null ? null : `old-name-${id}`,
  wrappedKey: parent === null ? null : `old-key-${id}`,
  versionId: null,
  size: 0,
  createdAt: 1,
  modifiedAt: 1,
});

const userRecord = (id: string, name: string, rootId: string): UserRecord => ({
  id,
  name,
  signKey: 'a'.repeat(43),
  boxKey: 'b'.repeat(43),
  admin: false,
  rootId,
  rootSealed: 'sealed',
  createdAt: 1,
});

/** The subtree under folder 2 (in folder 9 of the owner's home, 1): folders 3 and 4, files 5 to 12. */
const SUBTREE = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].filter((n) => n !== 9);

/**
 * A store whose folder 2 was shared with user 101 and unshared (its rotation pending),
 * and whose folder 9 above it is shared with user 102; a namespace over it.
 */
function unshared(name: string, installing: InstallOptions = {}) {
  const store = new SqliteStore(join(dir, `${name}.db`));
  const ns = new SqliteNamespaceStore(store.db);
  ns.createUser(userRecord(OWNER, 'owner', hex(1)), node(1, null, 'dir'));
  ns.createUser(userRecord(hex(101), 'revoked', hex(60)), node(60, null, 'dir'));
  ns.createUser(userRecord(hex(102), 'kept', hex(61)), node(61, null, 'dir'));
  ns.createNode(node(9, 1, 'dir'));
  ns.createNode(node(2, 9, 'dir'));
  ns.createNode(node(3, 2, 'dir'));
  ns.createNode(node(4, 2, 'dir'));
  for (const n of [5, 6, 7]) ns.createNode(node(n, 3, 'file'));
  for (const n of [8, 10, 11, 12]) ns.createNode(node(n, 4, 'file'));
  const grant = (nodeId: number, grantee: number) =>
    ns.putGrant({
      nodeId: hex(nodeId),
      granteeId: hex(grantee),
      perm: 'read',
      sealedKey: 'k',
      sealedName: 'n',
      signature: 's',
      signedAt: null,
      grantedAt: 1,
    });
  grant(2, 101);
  grant(9, 102);
  assert.equal(ns.revoke(hex(2), hex(101), 2), hex(2));
  const lines: { msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const audit = new AuditLog(join(dir, `${name}.audit.log`), () => 3);
  const open = () =>
    new NamespaceService(
      ns,
      {} as BlobService,
      log,
      audit,
      () => 3,
      () => undefined,
      installing,
    );
  const owner = ns.userById(OWNER) as UserRecord;
  return { store, ns, open, owner, lines, auditFile: join(dir, `${name}.audit.log`) };
}

/** The last part of a re-key of the whole subtree: every node a new key and name. */
const lastPart = (attempt: string): RekeyRequest => ({
  attempt,
  done: true,
  nodes: SUBTREE.map((n) => ({
    id: hex(n),
    wrappedKey: `new-key-${n}`,
    ...(n === 2 ? {} : { nameEnc: `new-name-${n}`, nameMac: hex(n + 1000, 64) }),
    expectWrappedKey: `old-key-${n}`,
  })),
  grants: [],
});

const keys = (ns: SqliteNamespaceStore) => SUBTREE.map((n) => ns.getNode(hex(n))?.wrappedKey);

test("a rotation's keys are installed a few nodes at a time; meanwhile requests under it wait (SEDFS_ERR_KEYS_INSTALLING) and others go on; then every key is new and the rotation over", async () => {
  const seen: string[][] = [];
  // What failed between steps (a failure there would be taken for a step's and retried).
  const failed: unknown[] = [];
  let service: NamespaceService | undefined;
  const t = unshared('steps', {
    stepNodes: 3,
    betweenSteps: async () => {
      try {
        checkBetweenSteps();
      } catch (err) {
        failed.push(err);
      }
    },
  });
  const checkBetweenSteps = () => {
    const s = service as NamespaceService;
    seen.push(keys(t.ns).map((k) => (k?.startsWith('new') ? 'new' : 'old')));
    for (const under of [2, 4, 11])
      assert.throws(
        () => s.node(t.owner, hex(under)),
        { code: 'SEDFS_ERR_KEYS_INSTALLING' },
        `node ${under}`,
      );
    assert.throws(() => s.children(t.owner, hex(3)), { code: 'SEDFS_ERR_KEYS_INSTALLING' });
    // Above and beside it, requests go on.
    assert.deepEqual(
      s.children(t.owner, hex(9)).map((e) => e.id),
      [hex(2)],
    );
    assert.equal(s.node(t.owner, hex(1)).id, hex(1));
    assert.deepEqual(
      s.rotations(t.owner).rotations.map((r) => [r.nodeId, r.installing]),
      [[hex(2), true]],
    );
    // An unshare above cannot take over a rotation half installed: refused, its grant kept.
    assert.throws(() => s.unshare(t.owner, hex(9), { grantee: hex(102) }), {
      code: 'SEDFS_ERR_KEYS_INSTALLING',
    });
    assert.equal(t.ns.grantsTo(hex(102)).length, 1);
  };
  service = t.open();
  const attempt = hex(77);
  const answer = await service.rekey(t.owner, hex(2), lastPart(attempt));
  assert.deepEqual(answer, { done: true, nodes: SUBTREE.length });
  assert.deepEqual(failed, []);
  // 10 nodes, 3 a step: four steps that install, one that ends the rotation.
  assert.equal(seen.length, 4);
  assert.deepEqual(
    seen.map((step) => step.filter((k) => k === 'new').length),
    [3, 6, 9, 10],
    'each step installs its nodes and no more',
  );
  assert.deepEqual(
    keys(t.ns),
    SUBTREE.map((n) => `new-key-${n}`),
  );
  assert.equal(t.ns.getNode(hex(11))?.nameEnc, 'new-name-11');
  assert.equal(t.ns.getNode(hex(2))?.nameEnc, 'old-name-2', 'the root keeps its name');
  assert.deepEqual(service.rotations(t.owner).rotations, []);
  assert.equal(service.node(t.owner, hex(11)).id, hex(11), 'requests under it go on');
  assert.match(readFileSync(t.auditFile, 'utf8'), /"event":"rekey"/);
  t.store.close();
});

test('a main stopped half-way through installing goes on at its next start, requests under the folder waiting until it has', async () => {
  const t = unshared('resumed', { stepNodes: 4 });
  t.ns.stageRekey(hex(2), hex(78), lastPart(hex(78)).nodes, []);
  assert.equal(t.ns.beginInstall(hex(2), hex(78)), SUBTREE.length);
  assert.equal(t.ns.installStep(hex(2), 4, 3), false);
  // Main stops here: four nodes have their new keys, six their old.
  assert.equal(keys(t.ns).filter((k) => k?.startsWith('new')).length, 4);
  const service = t.open();
  assert.throws(() => service.node(t.owner, hex(12)), { code: 'SEDFS_ERR_KEYS_INSTALLING' });
  for (let i = 0; i < 100 && service.rotations(t.owner).rotations.length > 0; i++) await sleep(10);
  assert.deepEqual(service.rotations(t.owner).rotations, []);
  assert.deepEqual(
    keys(t.ns),
    SUBTREE.map((n) => `new-key-${n}`),
  );
  assert.equal(service.node(t.owner, hex(12)).id, hex(12));
  t.store.close();
});

test('a step of an install that fails (main’s disk full) is logged and tried again until it goes through', async () => {
  const t = unshared('retried', { stepNodes: 100 });
  const installStep = t.ns.installStep.bind(t.ns);
  let failures = 0;
  t.ns.installStep = (...args) => {
    if (failures++ < 1) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    return installStep(...args);
  };
  const service = t.open();
  const answer = await service.rekey(t.owner, hex(2), lastPart(hex(79)));
  assert.deepEqual(answer, { done: true, nodes: SUBTREE.length });
  assert.deepEqual(
    keys(t.ns),
    SUBTREE.map((n) => `new-key-${n}`),
  );
  assert.ok(t.lines.some((l) => /a step of installing new keys failed/.test(l.msg)));
  t.store.close();
});

test('parts of new keys, or a new attempt, for a rotation being installed are refused as installing, and nothing of them is kept', () => {
  const t = unshared('late-part');
  t.ns.stageRekey(hex(2), hex(80), lastPart(hex(80)).nodes, []);
  t.ns.beginInstall(hex(2), hex(80));
  for (const [attempt, replacing] of [
    [hex(80), null],
    [hex(81), hex(80)],
  ] as const)
    assert.throws(() => t.ns.stageRekey(hex(2), attempt, [{ id: hex(2), wrappedKey: 'x' }], [], replacing), {
      code: 'SEDFS_ERR_KEYS_INSTALLING',
    });
  t.ns.dropAttempt(hex(2), hex(80));
  while (!t.ns.installStep(hex(2), 3, 3));
  assert.deepEqual(
    keys(t.ns),
    SUBTREE.map((n) => `new-key-${n}`),
  );
  t.store.close();
});

test('new names alike in a folder (to one there now, or to each other) are refused before any key is installed; alike in two folders, they are not', () => {
  const t = unshared('clash');
  const withMacs = (macs: Record<number, string>) =>
    lastPart(hex(90)).nodes.map((n) => {
      const k = Number.parseInt(n.id, 16);
      return macs[k] ? { ...n, nameMac: macs[k] } : n;
    });
  let attempt = 90;
  const begin = (macs: Record<number, string>) => {
    const a = hex(attempt);
    t.ns.stageRekey(hex(2), a, withMacs(macs), [], attempt === 90 ? null : hex(attempt - 1));
    attempt++;
    return () => t.ns.beginInstall(hex(2), a);
  };
  // File 5's new name is file 6's name now (6 is in the same folder, 3).
  assert.throws(begin({ 5: hex(6, 64) }), { code: 'SEDFS_ERR_EXISTS' });
  // Files 5 and 6 get the same new name.
  assert.throws(begin({ 5: hex(7777, 64), 6: hex(7777, 64) }), { code: 'SEDFS_ERR_EXISTS' });
  assert.deepEqual(
    t.ns.rotationsOf(OWNER).map((r) => r.installing),
    [false],
    'nothing installing',
  );
  assert.ok(keys(t.ns).every((k) => k?.startsWith('old')));
  // Files 5 (in folder 3) and 8 (in folder 4): one name each in its own folder.
  const nodes = begin({ 5: hex(7777, 64), 8: hex(7777, 64) })();
  assert.equal(nodes, SUBTREE.length);
  while (!t.ns.installStep(hex(2), 4, 3));
  assert.equal(t.ns.getNode(hex(8))?.nameMac, hex(7777, 64));
  t.store.close();
});

test('the folder of a rotation being installed may be removed with all of it (the way out of an install that keeps failing), which ends the install; a node inside may not', async () => {
  let service: NamespaceService | undefined;
  const failed: unknown[] = [];
  let removed = false;
  const t = unshared('removed', {
    stepNodes: 2,
    betweenSteps: async () => {
      if (removed) return;
      try {
        const s = service as NamespaceService;
        assert.throws(() => s.remove(t.owner, hex(5), false), { code: 'SEDFS_ERR_KEYS_INSTALLING' });
        s.remove(t.owner, hex(2), true);
        removed = true;
      } catch (err) {
        failed.push(err);
      }
    },
  });
  service = t.open();
  await service.rekey(t.owner, hex(2), lastPart(hex(91)));
  assert.deepEqual(failed, []);
  assert.ok(removed);
  assert.equal(t.ns.getNode(hex(2)), undefined);
  assert.equal(t.ns.getNode(hex(12)), undefined);
  assert.deepEqual(service.rotations(t.owner).rotations, []);
  assert.deepEqual(
    service.children(t.owner, hex(9)).map((e) => e.id),
    [],
  );
  assert.ok(
    !existsSync(t.auditFile) || !/"event":"rekey"/.test(readFileSync(t.auditFile, 'utf8')),
    'no rekey was installed',
  );
  t.store.close();
});

test('a main stopping while it installs stops between two steps; the rest is installed at its next start', async () => {
  let service: NamespaceService | undefined;
  let steps = 0;
  let stopped: Promise<void> | undefined;
  const t = unshared('stopped', {
    stepNodes: 2,
    betweenSteps: async () => {
      if (++steps === 2) stopped = (service as NamespaceService).stop();
    },
  });
  t.ns.stageRekey(hex(2), hex(92), lastPart(hex(92)).nodes, []);
  t.ns.beginInstall(hex(2), hex(92));
  service = t.open();
  for (let i = 0; i < 200 && !stopped; i++) await sleep(5);
  await stopped;
  const installed = keys(t.ns).filter((k) => k?.startsWith('new')).length;
  assert.ok(installed > 0 && installed < SUBTREE.length, `${installed} installed before the stop`);
  assert.deepEqual(
    t.ns.rotationsOf(OWNER).map((r) => r.installing),
    [true],
  );
  const again = t.open();
  for (let i = 0; i < 100 && again.rotations(t.owner).rotations.length > 0; i++) await sleep(10);
  assert.deepEqual(
    keys(t.ns),
    SUBTREE.map((n) => `new-key-${n}`),
  );
  t.store.close();
});
