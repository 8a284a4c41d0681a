import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { fetchBlob } from '../../src/client/fetch-blob.js';
import { storeBlob } from '../../src/client/store-blob.js';
import { TestCluster } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { hashingSink } from '../helpers/sinks.js';

let cluster: TestCluster;
before(async () => {
  // A long silence allowance: the dead server stays "up" to main and keeps being placed.
  cluster = await TestCluster.start({ servers: 3, replicas: 3, heartbeatTimeout: 30 });
});
after(() => cluster?.stop());

test('with one server of every chain dead, each chunk still lands on the other two, wherever the dead one sits', async () => {
  const client = await cluster.client();
  await cluster.killFileServer(1);
  const data = seededBytes(77, 40 * 64 * 1024);
  const res = await storeBlob(client, [data], { chunkBytes: 64 * 1024, replicas: 3 });
  assert.equal(res.chunks, 40);
  // The commit recorded exactly which replicas exist: every chunk is short of the dead one.
  assert.equal(res.underReplicated, 40);
  const manifest = await client.manifest(res.blobId);
  for (const c of manifest.chunks) {
    assert.ok(existsSync(cluster.chunkPath(0, c.id)), `chunk ${c.index} on server 0`);
    assert.ok(existsSync(cluster.chunkPath(2, c.id)), `chunk ${c.index} on server 2`);
    assert.ok(!existsSync(cluster.chunkPath(1, c.id)));
  }
  const out = hashingSink();
  await fetchBlob(client, res.blobId, out.sink);
  assert.equal(out.bytes(), data.length);
  assert.equal(out.digest(), createHash('sha256').update(data).digest('hex'));
});
