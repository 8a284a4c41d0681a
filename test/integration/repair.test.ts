import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { CheckResponse } from '../../src/protocol/main-api.js';
import type { ContentResponse } from '../../src/protocol/namespace-api.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { assertEveryChunkHasAGoodCopy } from '../helpers/invariants.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser, type TestUser } from '../helpers/users.js';

const CHUNK = 64 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Stores `data` and returns its manifest. */
async function storeAndList(user: TestUser, path: string, data: Buffer): Promise<ContentResponse> {
  await user.fs.put([data], path, { chunkBytes: CHUNK });
  const node = await user.fs.resolve(path);
  return user.client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
}

/** Flips one bit of a stored chunk file, as a failing disk would. */
function flip(path: string): void {
  const b = readFileSync(path);
  b[7] = (b[7] as number) ^ 0x10;
  writeFileSync(path, b);
}

function quarantined(cluster: TestCluster, index: number): string[] {
  const dir = join(cluster.fileServers[index]?.data as string, 'quarantine');
  return existsSync(dir) ? readdirSync(dir) : [];
}

describe('repair restores every chunk to R good copies', () => {
  let cluster: TestCluster;
  let user: TestUser;
  let chunkIds: string[];

  before(async () => {
    // Servers down for 1 s past the 2 s silence count as lost, so tests need not wait 10 minutes.
    cluster = await TestCluster.start({
      servers: 3,
      replicas: 3,
      mainArgs: ['--lost-after', '1', '--extra-grace', '1'],
    });
    user = await newUser(cluster, 'repairer');
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

  afterEach(() => assertEveryChunkHasAGoodCopy(cluster, chunkIds));
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

  test('unknown chunk files dropped into a server are reported extra and removed after the grace period; referenced ones stay', async () => {
    await cluster.killFileServer(0, 'SIGTERM');
    const strays = [seededBytes(501, 1000), seededBytes(502, 2000)].map((b) => {
      const id = sha(b);
      mkdirSync(dirname(cluster.chunkPath(0, id)), { recursive: true });
      writeFileSync(cluster.chunkPath(0, id), b);
      return id;
    });
    await cluster.startFileServer(0);
    const id0 = cluster.fileServers[0]?.id;
    await waitFor(
      'the extras reported',
      async () => (await check()).servers.find((s) => s.id === id0)?.extra === 2,
    );
    await waitFor('the extras deleted', () => strays.every((id) => !existsSync(cluster.chunkPath(0, id))));
    for (const id of chunkIds) assert.ok(existsSync(cluster.chunkPath(0, id)), 'referenced chunk kept');
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

describe('corrupt replicas are found, quarantined and repaired', () => {
  let cluster: TestCluster;
  let user: TestUser;
  const data = seededBytes(21, 6 * CHUNK);

  before(async () => {
    cluster = await TestCluster.start({
      servers: 3,
      replicas: 3,
      fileServerArgs: ['--scrub-interval', '1', '--scrub-rate', '0'],
    });
    user = await newUser(cluster, 'scrub');
  });
  after(async () => {
    await user?.client.close();
    await cluster?.stop();
  });

  test('the scrubber finds flipped bytes, quarantines them, and repair restores the chunk; reads stay correct', async () => {
    const content = await storeAndList(user, '/scrubbed.bin', data);
    const victim = content.manifest.chunks[2]?.id as string;
    flip(cluster.chunkPath(0, victim));
    const out = collector();
    await user.fs.get('/scrubbed.bin', out.sink);
    assert.deepEqual(out.bytes(), data);
    await waitFor('the quarantine', () => quarantined(cluster, 0).some((n) => n.startsWith(victim)));
    await waitFor(
      'the repaired replica',
      () =>
        existsSync(cluster.chunkPath(0, victim)) &&
        sha(readFileSync(cluster.chunkPath(0, victim))) === victim,
    );
    const again = collector();
    await user.fs.get('/scrubbed.bin', again.sink);
    assert.deepEqual(again.bytes(), data);
  });
});

describe('a replica a reader reports', () => {
  let cluster: TestCluster;
  let user: TestUser;
  const data = seededBytes(22, 6 * CHUNK);
  before(async () => {
    // Default scrubbing (a pass a week, done at start): only the reader's report can find the damage.
    cluster = await TestCluster.start({ servers: 3, replicas: 3 });
    user = await newUser(cluster, 'reader');
  });
  after(async () => {
    await user?.client.close();
    await cluster?.stop();
  });

  test('a replica a reader reports is re-checked by its server, quarantined and repaired', async () => {
    const content = await storeAndList(user, '/reported.bin', data);
    const chunk = content.manifest.chunks[4];
    assert.ok(chunk);
    const first = chunk.replicas[0]?.id as string;
    const index = cluster.fileServers.findIndex((f) => f.id === first);

    flip(cluster.chunkPath(index, chunk.id));
    const out = collector();
    await user.fs.get('/reported.bin', out.sink);
    assert.deepEqual(out.bytes(), data);
    await waitFor('the quarantine', () => quarantined(cluster, index).some((n) => n.startsWith(chunk.id)));
    await waitFor(
      'the repaired replica',
      () =>
        existsSync(cluster.chunkPath(index, chunk.id)) &&
        sha(readFileSync(cluster.chunkPath(index, chunk.id))) === chunk.id,
    );
  });
});

describe('main killed with SIGKILL during a repair', () => {
  let cluster: TestCluster;
  let user: TestUser;
  const data = seededBytes(33, 40 * CHUNK);

  before(async () => {
    // Slow repair (0.5 MiB/s), so the kill lands in the middle of it.
    cluster = await TestCluster.start({ servers: 3, replicas: 3, mainArgs: ['--repair-rate', '0.5'] });
    user = await newUser(cluster, 'crash');
  });
  after(async () => {
    await user?.client.close();
    await cluster?.stop();
  });

  test('after main restarts, the repair resumes and completes, and no chunk ever lost its last good copy', async () => {
    const content = await storeAndList(user, '/crash.bin', data);
    const ids = content.manifest.chunks.map((c) => c.id);
    await cluster.killFileServer(1, 'SIGTERM');
    for (const id of ids) rmSync(cluster.chunkPath(1, id));
    await cluster.startFileServer(1);
    const restored = () => ids.filter((id) => existsSync(cluster.chunkPath(1, id))).length;
    await waitFor('the repair to start', () => restored() > 0);
    await cluster.stopMain('SIGKILL');
    const atKill = restored();
    assert.ok(atKill < ids.length, `the repair had already finished (${atKill})`);
    // Every chunk still has good copies on the other two servers.
    for (const id of ids)
      assert.ok(existsSync(cluster.chunkPath(0, id)) && existsSync(cluster.chunkPath(2, id)));
    await cluster.startMain();
    await waitFor('the repair to complete', () => restored() === ids.length, 30_000);
    for (const id of ids) assert.equal(sha(readFileSync(cluster.chunkPath(1, id))), id);
  });
});

describe('a repair copy from a replica that went bad on disk', () => {
  let cluster: TestCluster;
  let user: TestUser;
  const data = seededBytes(44, 4 * CHUNK);

  before(async () => {
    cluster = await TestCluster.start({ servers: 3, replicas: 3 });
    user = await newUser(cluster, 'copier');
  });
  after(async () => {
    await user?.client.close();
    await cluster?.stop();
  });

  test('is refused by its target, and main has the source re-check and quarantine it; a good source then repairs both', async () => {
    const content = await storeAndList(user, '/copied.bin', data);
    const victim = content.manifest.chunks[1]?.id as string;
    // Server 0 holds the only copy the repair can read while server 2 is down, and it is bad.
    flip(cluster.chunkPath(0, victim));
    await cluster.killFileServer(2, 'SIGTERM');
    await cluster.killFileServer(1, 'SIGTERM');
    rmSync(cluster.chunkPath(1, victim));
    await cluster.startFileServer(1);

    const mainLog = () => readFileSync(join(cluster.mainData, 'main.log'), 'utf8');
    await waitFor('main to have the source re-check its copy', () =>
      /reported replica is corrupt: quarantined, repairing/.test(mainLog()),
    );
    assert.match(mainLog(), /repair copy failed/);
    assert.ok(
      quarantined(cluster, 0).some((n) => n.startsWith(victim)),
      'the bad copy is in quarantine',
    );
    // The receiving server never kept what it was sent.
    assert.equal(existsSync(cluster.chunkPath(1, victim)), false);

    await cluster.startFileServer(2);
    await waitFor(
      'both copies repaired from the good one',
      () =>
        [0, 1].every(
          (i) =>
            existsSync(cluster.chunkPath(i, victim)) &&
            sha(readFileSync(cluster.chunkPath(i, victim))) === victim,
        ),
      30_000,
    );
    const out = collector();
    await user.fs.get('/copied.bin', out.sink);
    assert.deepEqual(out.bytes(), data);
  });
});
