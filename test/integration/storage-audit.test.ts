import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { CheckResponse } from '../../src/protocol/main-api.js';
import type { ContentResponse } from '../../src/protocol/namespace-api.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser, type TestUser } from '../helpers/users.js';

const CHUNK = 64 * 1024;
let cluster: TestCluster;
let user: TestUser;
const data = seededBytes(71, 2 * CHUNK);

before(async () => {
  cluster = await TestCluster.start({ servers: 3, replicas: 3, mainArgs: ['--audit-interval', '0.3'] });
  await cluster.waitUp(3);
  user = await newUser(cluster, 'audited');
  await user.fs.put([data], '/a.bin', { chunkBytes: CHUNK });
});
after(async () => {
  await user?.client.close();
  await cluster?.stop();
});

test('a chunk file a server lost without noticing is found by main reading replicas back, and restored there', async () => {
  const node = await user.fs.resolve('/a.bin');
  const content = await user.client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
  const lost = content.manifest.chunks[1]?.id as string;
  // A disk that dropped a file: the server still counts it, and its next full inventory is hours away.
  rmSync(cluster.chunkPath(1, lost));
  const id = cluster.fileServers[1]?.id;
  const admin = await cluster.client();
  let check: CheckResponse | undefined;
  await waitFor(
    'the lost copy found by an audit and restored',
    async () => {
      check = await admin.call<CheckResponse>('GET', '/v1/check');
      const audits = check.servers.find((s) => s.id === id)?.audits;
      return (
        (audits?.failed ?? 0) >= 1 &&
        cluster.storedChunk(1, lost) !== undefined &&
        check.underReplicated === 0
      );
    },
    20_000,
  );
  const others = check?.servers.filter((s) => s.id !== id) ?? [];
  assert.ok(
    others.every((s) => s.audits.failed === 0 && s.audits.passed > 0),
    `the other servers passed their audits: ${JSON.stringify(others.map((s) => s.audits))}`,
  );
  assert.match(
    readFileSync(join(cluster.mainData, 'main.log'), 'utf8'),
    /audit: a server does not have a chunk main counted there/,
  );
  const out = collector();
  await user.fs.get('/a.bin', out.sink);
  assert.deepEqual(out.bytes(), data);
});
