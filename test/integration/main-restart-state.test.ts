import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { login, signup } from '../../src/client/account.js';
import { FileSystem } from '../../src/client/file-system.js';
import type { SecretIdentity } from '../../src/crypto/identity.js';
import { TestCluster } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';

async function read(fs: FileSystem, path: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  await fs.get(
    path,
    new Writable({
      write(c: Buffer, _e, cb) {
        parts.push(Buffer.from(c));
        cb();
      },
    }),
  );
  return Buffer.concat(parts);
}

describe('main restarted keeps its registry, chunk map and namespace', () => {
  let cluster: TestCluster;
  let identity: SecretIdentity;
  const data = seededBytes(31, 700_000);
  let serverIds: string[];

  before(async () => {
    cluster = await TestCluster.start({ servers: 3, replicas: 3 });
    const c = cluster.newClient();
    identity = (await signup(c, 'frank')).identity;
    await login(c, 'frank', identity);
    const fs = await FileSystem.open(c, identity);
    await fs.mkdir('/keep');
    await fs.put([data], '/keep/data.bin', { chunkBytes: 128 * 1024 });
    await c.close();
    serverIds = (await cluster.servers()).map((s) => s.id).sort();
  });
  after(() => cluster?.stop());

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    test(`after ${signal} and a restart on the same port: same servers up, and the file reads back identical`, async () => {
      await cluster.stopMain(signal);
      await cluster.startMain();
      // File servers were never told: their heartbeats simply reach the new process.
      const list = await cluster.waitUp(3);
      assert.deepEqual(list.map((s) => s.id).sort(), serverIds);
      const c = cluster.newClient();
      try {
        await login(c, 'frank', identity);
        const fs = await FileSystem.open(c, identity);
        assert.deepEqual(await read(fs, '/keep/data.bin'), data);
        assert.deepEqual(
          (await fs.list('/keep')).map((e) => e.name),
          ['data.bin'],
        );
      } finally {
        await c.close();
      }
    });
  }
});
