import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { CheckResponse } from '../../src/protocol/main-api.js';
import type { ContentResponse } from '../../src/protocol/namespace-api.js';
import { runSedfs, TestCluster, waitFor } from '../helpers/cluster.js';
import { assertEveryChunkHasAGoodCopy } from '../helpers/invariants.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser, type TestUser } from '../helpers/users.js';

const CHUNK = 64 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('reconciliation while file servers run', () => {
  let cluster: TestCluster;
  let user: TestUser;
  let chunkIds: string[];
  const data = seededBytes(41, 6 * CHUNK);
  const configFile = `${process.env.TMPDIR ?? '/tmp'}/sedfs-reconcile-${process.pid}.json`;

  before(async () => {
    // Settings from a config file, named as the flags are: a full inventory every second.
    writeFileSync(configFile, JSON.stringify({ 'inventory-interval': 1, 'extra-grace': 1 }));
    cluster = await TestCluster.start({ servers: 3, replicas: 3, mainArgs: ['--config', configFile] });
    user = await newUser(cluster, 'reconciler');
    await user.fs.put([data], '/r.bin', { chunkBytes: CHUNK });
    const node = await user.fs.resolve('/r.bin');
    const content = await user.client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
    chunkIds = content.manifest.chunks.map((c) => c.id);
  });
  after(async () => {
    await user?.client.close();
    await cluster?.stop();
    rmSync(configFile, { force: true });
  });
  afterEach(() => assertEveryChunkHasAGoodCopy(cluster, chunkIds));
  const admin = async () => cluster.client();

  test('chunks deleted from a running server are found by the periodic full inventory and restored', async () => {
    const gone = chunkIds.slice(1, 3);
    for (const id of gone) rmSync(cluster.chunkPath(2, id));
    await waitFor('the missing chunks restored', () =>
      gone.every((id) => existsSync(cluster.chunkPath(2, id))),
    );
    for (const id of gone) assert.equal(sha(readFileSync(cluster.chunkPath(2, id))), id);
    const log = readFileSync(join(cluster.mainData, 'main.log'), 'utf8');
    assert.match(log, /inventory differs from what main expects/);
  });

  test('check --verify re-hashes every replica, finds a flipped byte, and the repair is done when it answers', async () => {
    const victim = chunkIds[4] as string;
    const path = cluster.chunkPath(1, victim);
    const bytes = readFileSync(path);
    bytes[100] = (bytes[100] as number) ^ 1;
    writeFileSync(path, bytes);
    const client = await admin();
    const res = await client.call<CheckResponse>('POST', '/v1/check/repair', { verify: true });
    const id1 = cluster.fileServers[1]?.id;
    assert.deepEqual(
      res.verify?.map((v) => [v.server, v.checked >= chunkIds.length, v.corrupt]).sort(),
      cluster.fileServers.map((f) => [f.id, true, f.id === id1 ? 1 : 0]).sort(),
    );
    assert.equal(res.servers.find((s) => s.id === id1)?.corrupt, 1);
    assert.equal(res.underReplicated, 0);
    assert.equal(sha(readFileSync(path)), victim, 'restored before check answered');
    const quarantine = readdirSync(join(cluster.fileServers[1]?.data as string, 'quarantine'));
    assert.ok(quarantine.some((n) => n.startsWith(victim)));
    const out = collector();
    await user.fs.get('/r.bin', out.sink);
    assert.deepEqual(out.bytes(), data);
  });

  /** An inventory sent as file server 0 itself, with its certificate. */
  const inventoryAsServer0 = async (body: string, headers: Record<string, string>) => {
    const asServer = cluster.serverAgent(0);
    try {
      const res = await request(`${cluster.mainUrl}/v1/servers/${cluster.fileServers[0]?.id}/inventory`, {
        dispatcher: asServer,
        method: 'PUT',
        headers: {
          authorization: `Bearer ${cluster.joinToken}`,
          'content-type': 'application/octet-stream',
          ...headers,
        },
        body,
      });
      return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
    } finally {
      await asServer.close();
    }
  };

  test('an inventory whose ids are out of order, or whose listing time is not a time, is refused with a clear error, and main carries on', async () => {
    const bad: { body: string; headers: Record<string, string>; message: RegExp }[] = [
      { body: `${'b'.repeat(64)}\n${'a'.repeat(64)}\n`, headers: {}, message: /ascending order/ },
      {
        body: `${'a'.repeat(64)}\n`,
        headers: { 'x-sedfs-listed-after': '-5' },
        message: /x-sedfs-listed-after must be a time/,
      },
      {
        body: `${'a'.repeat(64)}\n`,
        headers: { 'x-sedfs-listed-after': '1e9' },
        message: /x-sedfs-listed-after must be a time/,
      },
    ];
    for (const b of bad) {
      const res = await inventoryAsServer0(b.body, b.headers);
      assert.equal(res.status, 400);
      const error = res.body.error as { code: string; message: string };
      assert.equal(error.code, 'SEDFS_ERR_BAD_REQUEST');
      assert.match(error.message, b.message);
    }
    assert.equal((await (await admin()).call<CheckResponse>('GET', '/v1/check')).servers.length, 3);
  });

  test("a server's own inventory listed after a time before any of its replicas was recorded counts none of them missing", async () => {
    // An empty list: had main judged it from when it read it, all of this server's
    // replicas would be dropped as missing.
    const res = await inventoryAsServer0('', { 'x-sedfs-listed-after': '0' });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { reported: 0, missing: 0, extra: 0 });
  });

  test('a config file with an unknown setting stops main with a clear error', async () => {
    const bad = `${process.env.TMPDIR ?? '/tmp'}/sedfs-bad-${process.pid}.json`;
    writeFileSync(bad, JSON.stringify({ 'lost-afterr': 5 }));
    const r = await runSedfs(['main', '--config', bad, '--data', join(cluster.root, 'never')]);
    rmSync(bad);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /lost-afterr.*unknown setting in the config file/);
  });
});
