import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fetchBlob } from '../../src/client/fetch-blob.js';
import { storeBlob } from '../../src/client/store-blob.js';
import { TestCluster } from '../helpers/cluster.js';
import { seededPieces } from '../helpers/seeded.js';
import { hashingSink } from '../helpers/sinks.js';

function expectedDigest(seed: number, length: number): string {
  const h = createHash('sha256');
  for (const p of seededPieces(seed, length)) h.update(p);
  return h.digest('hex');
}

describe('a 100 MiB stream stored with R=3', () => {
  const SIZE = 100 * 1024 * 1024;
  const SEED = 42;
  let cluster: TestCluster;
  let blobId: string;

  before(async () => {
    cluster = await TestCluster.start({ servers: 3, replicas: 3 });
    const res = await storeBlob(await cluster.client(), seededPieces(SEED, SIZE), { replicas: 3 });
    blobId = res.blobId;
    assert.equal(res.size, SIZE);
    assert.equal(res.chunks, 25);
    assert.equal(res.underReplicated, 0);
  });
  after(() => cluster?.stop());

  test('every chunk is on all 3 distinct servers, on their disks, with the right bytes', async () => {
    const manifest = await (await cluster.client()).manifest(blobId);
    assert.equal(manifest.chunks.length, 25);
    for (const c of manifest.chunks) {
      assert.equal(new Set(c.replicas.map((r) => r.id)).size, 3);
      for (let i = 0; i < 3; i++) {
        const path = cluster.chunkPath(i, c.id);
        assert.ok(existsSync(path), `chunk ${c.index} missing on server ${i}`);
        assert.equal(createHash('sha256').update(readFileSync(path)).digest('hex'), c.id);
      }
    }
  });

  test('reads back byte-identical', async () => {
    const out = hashingSink();
    await fetchBlob(await cluster.client(), blobId, out.sink);
    assert.equal(out.bytes(), SIZE);
    assert.equal(out.digest(), expectedDigest(SEED, SIZE));
  });

  test('still reads back byte-identical with one holder killed', async () => {
    await cluster.killFileServer(1);
    const out = hashingSink();
    await fetchBlob(await cluster.client(), blobId, out.sink);
    assert.equal(out.bytes(), SIZE);
    assert.equal(out.digest(), expectedDigest(SEED, SIZE));
  });
});
