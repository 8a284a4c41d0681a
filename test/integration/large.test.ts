import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { login, signup } from '../../src/client/account.js';
import type { ClusterClient } from '../../src/client/cluster-client.js';
import { FileSystem } from '../../src/client/file-system.js';
import { TestCluster } from '../helpers/cluster.js';
import { seededPieces } from '../helpers/seeded.js';
import { newUser } from '../helpers/users.js';

let cluster: TestCluster;
let client: ClusterClient;
before(async () => {
  cluster = await TestCluster.start({ servers: 1, replicas: 1 });
});
after(async () => {
  await client?.close();
  await cluster?.stop();
});

test('a folder of 10,000 files lists every name correctly', async () => {
  const user = await newUser(cluster, 'many');
  client = user.client;
  const fs = user.fs;
  await fs.mkdir('/big');
  const names = Array.from({ length: 10_000 }, (_, i) => `file-${String(i).padStart(5, '0')}.txt`);
  // Stored as put -r stores small files, a batch to a commit (one put each took 76 s of CI).
  assert.equal(
    await fs.putMany(
      '/big',
      names.map((name) => ({ name, data: Buffer.from(name) })),
    ),
    names.length,
  );
  const listed = await fs.list('/big');
  assert.equal(listed.length, 10_000);
  assert.deepEqual(
    listed.map((e) => e.name),
    names,
  );
  assert.ok(listed.every((e) => e.kind === 'file' && e.size === e.name.length));
});

test('a 1 GiB file round-trips byte-identical with memory bounded by the chunk window', async () => {
  const SIZE = 1024 * 1024 * 1024;
  const c = cluster.newClient();
  try {
    const { identity } = await signup(c, 'huge');
    await login(c, 'huge', identity);
    const fs = await FileSystem.open(c, identity);
    const expected = createHash('sha256');
    const source = (function* () {
      for (const piece of seededPieces(99, SIZE, 4 * 1024 * 1024)) {
        expected.update(piece);
        yield piece;
      }
    })();
    await fs.put(source, '/huge.bin');
    const got = createHash('sha256');
    let bytes = 0;
    await fs.get(
      '/huge.bin',
      new Writable({
        write(chunk: Buffer, _e, cb) {
          got.update(chunk);
          bytes += chunk.length;
          cb();
        },
      }),
    );
    assert.equal(bytes, SIZE);
    assert.equal(got.digest('hex'), expected.digest('hex'));
    // This test process is the client: it streamed 1 GiB each way without holding it.
    assert.ok(process.memoryUsage().rss < 400 * 1024 * 1024, `rss ${process.memoryUsage().rss}`);
  } finally {
    await c.close();
  }
});
