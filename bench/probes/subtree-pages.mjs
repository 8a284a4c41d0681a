// How long main's thread spends on each page of a large subtree an unshare reads
// (`GET /v1/nodes/:id/subtree?after=`, SUBTREE_PAGE nodes): the store's pre-order walk
// and the JSON of the answer, over a whole walk of NODES nodes (FOLDERS folders of files,
// each file with a version, a few grants), seeded straight into a store in a temporary
// folder; then the whole subtree in one query, as the route answered before it was paged;
// then the rotation installed over it (the last part of an unshare): its checks in one
// transaction, then its steps of STEP nodes, each a transaction of its own.
// Run from the repository root after `npm run build`:
//
//   node bench/probes/subtree-pages.mjs [NODES=500000] [FOLDERS=500] [PAGE=SUBTREE_PAGE] [STEP=2000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteNamespaceStore } from '../../dist/src/main-server/store/sqlite-namespace-store.js';
import { SqliteStore } from '../../dist/src/main-server/store/sqlite-store.js';
import { SUBTREE_PAGE } from '../../dist/src/protocol/namespace-api.js';

const total = Number(process.argv[2] ?? 500_000);
const folders = Number(process.argv[3] ?? 500);
const pageSize = Number(process.argv[4] ?? SUBTREE_PAGE);
const step = Number(process.argv[5] ?? 2000);
const hex = (n) => n.toString(16).padStart(32, '0');
const mac = (n) => (n * 2654435761).toString(16).padStart(64, '0').slice(-64);
const root = mkdtempSync(join(tmpdir(), 'sedfs-subtree-probe-'));
const store = new SqliteStore(join(root, 'main.db'));
const ns = new SqliteNamespaceStore(store.db);
const owner = hex(1);
const shared = hex(3);

function seed() {
  const user = (id, name, home) => ({
    id,
    name,
    signKey: 'a'.repeat(43),
    boxKey: 'b'.repeat(43),
    admin: false,
    rootId: home,
    rootSealed: 'sealed',
    createdAt: 1,
  });
  const homeNode = (id, ownerId) => ({
    id,
    ownerId,
    parentId: null,
    kind: 'dir',
    nameMac: null,
    nameEnc: null,
    wrappedKey: null,
    versionId: null,
    size: 0,
    createdAt: 1,
    modifiedAt: 1,
  });
  ns.createUser(user(owner, 'owner', hex(2)), homeNode(hex(2), owner));
  for (let g = 0; g < 10; g++)
    ns.createUser(user(hex(100 + g), `g${g}`, hex(200 + g)), homeNode(hex(200 + g), hex(100 + g)));
  const node = store.db.prepare(
    `INSERT INTO nodes (id, owner_id, parent_id, kind, name_mac, name_enc, wrapped_key, version_id, size, created_at, modified_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 4096, 1, 1)`,
  );
  const blob = store.db.prepare('INSERT INTO blobs (id, size, created_at) VALUES (?, 4096, 1)');
  const version = store.db.prepare(
    'INSERT INTO versions (id, node_id, blob_id, size, chunk_bytes, content_key, created_at) VALUES (?, ?, ?, 4096, 4194304, ?, 1)',
  );
  // Ciphertext-sized strings, as clients send them.
  const nameEnc = 'n'.repeat(80);
  const wrapped = 'w'.repeat(80);
  let next = 1000;
  const insert = store.db.transaction((rows) => {
    for (const [id, parent, kind] of rows) {
      const v = kind === 'file' ? hex(next++) : null;
      if (v) blob.run(v);
      node.run(id, owner, parent, kind, mac(Number.parseInt(id, 16)), nameEnc, wrapped, v);
      if (v) version.run(v, id, v, wrapped);
    }
  });
  insert([[shared, hex(2), 'dir']]);
  const perFolder = Math.ceil((total - 1 - folders) / folders);
  let made = 1;
  for (let f = 0; f < folders && made < total; f++) {
    const dir = hex(next++);
    const rows = [[dir, shared, 'dir']];
    for (let k = 0; k < perFolder && made + rows.length < total; k++) rows.push([hex(next++), dir, 'file']);
    insert(rows);
    made += rows.length;
  }
  for (let g = 0; g < 10; g++)
    ns.putGrant({
      nodeId: shared,
      granteeId: hex(100 + g),
      perm: 'read',
      sealedKey: 'k',
      sealedName: 'n',
      grantedAt: 1,
    });
  return made;
}

/**
 * Stages new keys for the whole subtree (as an unshare's parts would, by SQL here) and
 * times installing them as the last part does: `beginInstall` (the checks), then each
 * `installStep` (main's thread is free between two).
 */
function installRotation() {
  ns.revoke(shared, hex(100), 2);
  ns.stageRekey(shared, 'probe', [], [], null);
  const down =
    'WITH RECURSIVE down(id) AS (SELECT @root UNION ALL SELECT n.id FROM nodes n JOIN down ON n.parent_id = down.id)';
  store.db
    .prepare(
      `${down} INSERT INTO rotation_nodes
         (root_id, node_id, wrapped_key, name_enc, name_mac, content_key, version_id, expect_wrapped_key)
       SELECT @root, n.id, 'x' || n.wrapped_key, n.name_enc, n.name_mac, v.content_key, n.version_id, n.wrapped_key
       FROM down JOIN nodes n ON n.id = down.id LEFT JOIN versions v ON v.id = n.version_id`,
    )
    .run({ root: shared });
  store.db
    .prepare(
      `${down} INSERT INTO rotation_grants (root_id, node_id, grantee_id, sealed_key)
       SELECT @root, g.node_id, g.grantee_id, 'k2' FROM down JOIN grants g ON g.node_id = down.id`,
    )
    .run({ root: shared });
  let t = performance.now();
  const nodes = ns.beginInstall(shared, 'probe');
  const checkMs = performance.now() - t;
  const steps = [];
  for (let ended = false; !ended; ) {
    t = performance.now();
    ended = ns.installStep(shared, step, 3);
    steps.push(performance.now() - t);
  }
  const sortedSteps = steps.toSorted((a, b) => a - b);
  return {
    checkMs,
    steps: steps.length,
    stepMedianMs: sortedSteps[sortedSteps.length >> 1],
    stepMaxMs: sortedSteps[sortedSteps.length - 1],
    stepsMs: steps.reduce((a, b) => a + b, 0),
    nodes,
  };
}

/** One page as the route answers it: the store's walk, then its JSON. */
function page(after) {
  const t = performance.now();
  const res = ns.subtreePage(shared, after, pageSize);
  const walked = performance.now() - t;
  const body = JSON.stringify({
    nodes: res.nodes.map((n) => ({ ...n, ownerId: undefined, createdAt: undefined })),
    grants: res.grants.map((g) => ({ nodeId: g.nodeId, granteeId: g.granteeId, boxKey: 'b'.repeat(43) })),
    next: res.next,
  });
  return { res, walked, all: performance.now() - t, bytes: body.length };
}

try {
  let t = performance.now();
  const made = seed();
  const seedSeconds = ((performance.now() - t) / 1000).toFixed(1);
  const times = [];
  let after;
  let nodes = 0;
  let bytes = 0;
  do {
    const p = page(after);
    times.push(p);
    nodes += p.res.nodes.length;
    bytes = Math.max(bytes, p.bytes);
    after = p.res.next;
  } while (after);
  const sorted = (f) => times.map(f).sort((a, b) => a - b);
  const walks = sorted((p) => p.walked);
  const alls = sorted((p) => p.all);
  t = performance.now();
  const whole = store.db
    .prepare(
      `WITH RECURSIVE down(id) AS (SELECT ? UNION ALL SELECT n.id FROM nodes n JOIN down ON n.parent_id = down.id)
       SELECT n.*, v.content_key FROM down JOIN nodes n ON n.id = down.id LEFT JOIN versions v ON v.id = n.version_id`,
    )
    .all(shared);
  const wholeQuery = performance.now() - t;
  const wholeJson = JSON.stringify(whole).length;
  const wholeAll = performance.now() - t;
  const install = installRotation();
  const ms = (x) => Math.round(x * 10) / 10;
  console.log(
    JSON.stringify({
      nodes: made,
      seedSeconds,
      page: pageSize,
      pages: times.length,
      walked: nodes,
      walkMs: { median: ms(walks[walks.length >> 1]), max: ms(walks[walks.length - 1]) },
      pageWithJsonMs: { median: ms(alls[alls.length >> 1]), max: ms(alls[alls.length - 1]) },
      wholeWalkMs: ms(alls.reduce((a, b) => a + b, 0)),
      largestPageBytes: bytes,
      oneAnswerBefore: {
        queryMs: ms(wholeQuery),
        withJsonMs: ms(wholeAll),
        bytes: wholeJson,
        rows: whole.length,
      },
      // The last part of an unshare's rotation: checks every key of the subtree in one
      // transaction, then replaces them a step at a time, main's thread free in between.
      install: {
        nodes: install.nodes,
        checkMs: ms(install.checkMs),
        step,
        steps: install.steps,
        stepMs: { median: ms(install.stepMedianMs), max: ms(install.stepMaxMs) },
        allStepsMs: ms(install.stepsMs),
      },
    }),
  );
} finally {
  store.close();
  rmSync(root, { recursive: true, force: true });
}
