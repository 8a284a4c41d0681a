import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fetchBlob } from '../../src/client/fetch-blob.js';
import { storeBlob } from '../../src/client/store-blob.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes, seededPieces } from '../helpers/seeded.js';

describe('writing with fewer live servers than the wanted replicas', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await TestCluster.start({ servers: 2, replicas: 3 });
  });
  after(() => cluster?.stop());

  test('still writes, warns, and records the chunks as under-replicated', async () => {
    const warnings: string[] = [];
    const res = await storeBlob(await cluster.client(), seededPieces(7, 3 * 256 * 1024), {
      chunkBytes: 256 * 1024,
      onWarning: (w) => warnings.push(w),
    });
    assert.equal(res.chunks, 3);
    assert.equal(res.underReplicated, 3);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] as string, /only 2 of 3/);
    const manifest = await (await cluster.client()).manifest(res.blobId);
    for (const c of manifest.chunks) assert.equal(c.replicas.length, 2);
    await waitFor('the warning in main.log', () => {
      const log = readFileSync(join(cluster.mainData, 'main.log'), 'utf8');
      return (
        log.includes('placing with fewer replicas than wanted') &&
        log.includes('committed under-replicated chunks')
      );
    });

    const parts: Buffer[] = [];
    await fetchBlob(
      await cluster.client(),
      res.blobId,
      new Writable({
        write(c: Buffer, _e, cb) {
          parts.push(Buffer.from(c));
          cb();
        },
      }),
    );
    assert.deepEqual(Buffer.concat(parts), seededBytes(7, 3 * 256 * 1024));
  });

  test('with no live file server, a placement is refused with SEDFS_ERR_NO_SERVERS', async () => {
    await cluster.killFileServer(0);
    await cluster.killFileServer(1);
    await cluster.waitUp(0);
    await assert.rejects(storeBlob(await cluster.client(), seededPieces(8, 1000)), {
      code: 'SEDFS_ERR_NO_SERVERS',
    });
  });
});
