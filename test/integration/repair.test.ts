import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { CheckResponse } from '../../src/protocol/main-api.js';
import type { ContentResponse } from '../../src/protocol/namespace-api.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser, type TestUser } from '../helpers/users.js';

const CHUNK = 64 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('repair restores every chunk to R good copies', () => {
  let cluster: TestCluster;
  let user: TestUser;
  let chunkIds: string[];

  before(async () => {
    // Servers down for 1 s past the 2 s silence count as lost, so tests need not wait 10 minutes.
    cluster = await TestCluster.start({ servers: 3, replicas: 3, mainArgs: ['--lost-after', '1'] });
    user = await newUser(cluster.mainUrl, 'repairer');
    await user.fs.put([seededBytes(9, 8 * CHUNK)], '/data.bin', { chunkBytes: CHUNK });
    const node = await user.fs.resolve('/data.bin');
    const content = await user.client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
    chunkIds = content.manifest.chunks.map((c) => c.id);
    assert.equal(chunkIds.length, 8);
  });
  after(async () => {
    await user?.client.close();
    await cluster?.stop();
  });

  const check = async () => (await cluster.client()).call<CheckResponse>('GET', '/v1/check');
  const holders = (id: string) =>
    cluster.fileServers.filter((f) => existsSync(cluster.chunkPath(f.index, id)));

  test('chunks deleted from a stopped server are reported missing on it after restart, and restored', async () => {
    await cluster.killFileServer(1, 'SIGTERM');
    const gone = chunkIds.slice(0, 3);
    for (const id of gone) rmSync(cluster.chunkPath(1, id));
    await cluster.startFileServer(1);
    const id1 = cluster.fileServers[1]?.id;
    await waitFor(
      'the inventory comparison',
      async () => (await check()).servers.find((s) => s.id === id1)?.missing === 3,
    );
    await waitFor('the missing chunks restored', async () =>
      gone.every((id) => existsSync(cluster.chunkPath(1, id))),
    );
    for (const id of gone) assert.equal(sha(readFileSync(cluster.chunkPath(1, id))), id);
    await waitFor('nothing under-replicated', async () => (await check()).underReplicated === 0);
    assert.ok((await check()).repair.chunks >= 3);
  });

  test('one of three servers killed for good and a fourth started: every chunk is back to R=3 on live servers', async () => {
    await cluster.killFileServer(2);
    await cluster.addFileServer();
    await waitFor(
      'every chunk on the three live servers',
      () => chunkIds.every((id) => holders(id).filter((f) => f.index !== 2).length === 3),
      20_000,
    );
    for (const id of chunkIds) assert.equal(sha(readFileSync(cluster.chunkPath(3, id))), id);
    // Still readable after the loss and the repair.
    const out = collector();
    await user.fs.get('/data.bin', out.sink);
    assert.deepEqual(out.bytes(), seededBytes(9, 8 * CHUNK));
  });
});
