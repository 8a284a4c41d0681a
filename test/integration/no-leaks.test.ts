import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TestCluster } from '../helpers/cluster.js';
import { filesContaining } from '../helpers/files.js';
import { seededBytes } from '../helpers/seeded.js';
import { newUser } from '../helpers/users.js';

let cluster: TestCluster;
before(async () => {
  cluster = await TestCluster.start({ servers: 3, replicas: 3 });
});
after(() => cluster?.stop());

test('no name or content reaches any server disk or log, raw, hex or base64', async () => {
  // A marker made from seeded bytes, so the run is reproducible and the marker is unlikely anywhere else.
  const marker = `mk${seededBytes(2026, 12).toString('hex')}`;
  const { client, fs } = await newUser(cluster, 'leaktest');

  await fs.mkdir(`/${marker}-folder/${marker}-sub`, { parents: true });
  const content = Buffer.from(`${marker} `.repeat(50_000)); // ~1.4 MB, several chunks at 256 KiB
  await fs.put([content], `/${marker}-folder/${marker}-file.txt`, { chunkBytes: 256 * 1024 });
  await fs.put([Buffer.from(`message ${marker}`)], `/${marker}-folder/${marker}-sub/${marker} message`);
  await fs.mv(`/${marker}-folder/${marker}-file.txt`, `/${marker}-folder/${marker}-renamed`);
  await client.close();

  const m = Buffer.from(marker);
  const needles = [
    m,
    Buffer.from(m.toString('hex')),
    Buffer.from(m.toString('base64').slice(0, 16)),
    Buffer.from(m.toString('base64url').slice(0, 16)),
  ];
  // Logs are written asynchronously; stop the servers so everything is flushed.
  await cluster.stopMain('SIGTERM');
  for (let i = 0; i < 3; i++) await cluster.killFileServer(i, 'SIGTERM');
  const hits = filesContaining(cluster.root, needles);
  assert.deepEqual(hits, []);
  // The search does find what main is allowed to know, such as the user name.
  assert.ok(filesContaining(cluster.mainData, [Buffer.from('leaktest')]).length > 0);
});
