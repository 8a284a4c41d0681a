import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fetchManifest } from '../../src/client/fetch-blob.js';
import type { ContentResponse } from '../../src/protocol/namespace-api.js';
import { TestCluster } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser, type TestUser } from '../helpers/users.js';

const CHUNK = 64 * 1024;
let cluster: TestCluster;
let user: TestUser;

before(async () => {
  // The default grace: a read ticket's lifetime.
  cluster = await TestCluster.start({ servers: 3, replicas: 3 });
  await cluster.waitUp(3);
  user = await newUser(cluster, 'reader');
});
after(async () => {
  await user?.client.close();
  await cluster?.stop();
});

test('a reader handed a version before it was replaced still fetches all of it: its chunks outlive the replacement for a grace period', async () => {
  await user.fs.put([seededBytes(81, 3 * CHUNK)], '/r.bin', { chunkBytes: CHUNK });
  const node = await user.fs.resolve('/r.bin');
  const before = await user.client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
  await user.fs.put([seededBytes(82, 3 * CHUNK)], '/r.bin', { chunkBytes: CHUNK });
  // Long enough for the deleter, which is kicked by the replacement, to have sent any order due.
  await delay(1500);
  for (const c of before.manifest.chunks)
    for (const i of [0, 1, 2])
      assert.ok(cluster.storedChunk(i, c.id), `chunk ${c.index} still on server ${i}`);
  const out = collector();
  const got = await fetchManifest(user.client, before.manifest, out.sink);
  assert.equal(got.chunks, 3);
  assert.equal(
    out.bytes().length,
    before.manifest.chunks.reduce((n, c) => n + c.size, 0),
  );
});
