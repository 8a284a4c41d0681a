import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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

/**
 * One file server runs in a network namespace of its own, joined to this one by a veth
 * pair; everything else binds the host end's address, which stays reachable from here
 * while the link is down. Taking the link down is a real partition: packets go nowhere.
 */
const NS = `sedfs-part-${process.pid}`;
const HOST_END = `sp${process.pid}h`;
const NS_END = `sp${process.pid}n`;
const SUBNET = `10.213.${(process.pid % 200) + 20}`;
const HOST_IP = `${SUBNET}.1`;
const NS_IP = `${SUBNET}.2`;

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

/** Makes the namespace and link; returns why it cannot, so the test can say so and skip. */
function makeNetwork(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces exist only on Linux';
  if (process.getuid?.() !== 0) return 'making network namespaces needs root';
  try {
    ip('netns', 'add', NS);
    ip('link', 'add', HOST_END, 'type', 'veth', 'peer', 'name', NS_END);
    ip('link', 'set', NS_END, 'netns', NS);
    ip('addr', 'add', `${HOST_IP}/30`, 'dev', HOST_END);
    ip('link', 'set', HOST_END, 'up');
    ip('-n', NS, 'addr', 'add', `${NS_IP}/30`, 'dev', NS_END);
    ip('-n', NS, 'link', 'set', NS_END, 'up');
    ip('-n', NS, 'link', 'set', 'lo', 'up');
    return undefined;
  } catch (err) {
    removeNetwork();
    return `ip netns is unavailable here: ${(err as Error).message.split('\n')[0]}`;
  }
}

function removeNetwork(): void {
  // Deleting the namespace deletes its end of the veth pair, and with it ours.
  try {
    ip('netns', 'del', NS);
  } catch {}
}

const unavailable = makeNetwork();

describe('a file server cut off by a network partition', { skip: unavailable }, () => {
  let cluster: TestCluster;
  let user: TestUser;
  let chunkIds: string[];
  const data = seededBytes(51, 8 * CHUNK);
  const PARTED = 2;

  before(async () => {
    cluster = await TestCluster.start({
      servers: 2,
      replicas: 3,
      host: HOST_IP,
      mainArgs: ['--lost-after', '1', '--extra-grace', '1'],
    });
    await cluster.addFileServer({ netns: NS, host: NS_IP });
    await cluster.waitUp(3);
    user = await newUser(cluster, 'parted');
    // Three servers and R=3: every chunk has a copy behind the link that will go down.
    await user.fs.put([data], '/p.bin', { chunkBytes: CHUNK });
    const node = await user.fs.resolve('/p.bin');
    const content = await user.client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
    chunkIds = content.manifest.chunks.map((c) => c.id);
    for (const id of chunkIds) assert.ok(existsSync(cluster.chunkPath(PARTED, id)));
    await cluster.addFileServer();
    await cluster.waitUp(4);
  });
  after(async () => {
    await user?.client.close();
    await cluster?.stop();
    removeNetwork();
  });

  afterEach(() => assertEveryChunkHasAGoodCopy(cluster, chunkIds));
  const check = async () => (await cluster.client()).call<CheckResponse>('GET', '/v1/check');
  const copies = (id: string, servers: number[]) =>
    servers.filter((i) => existsSync(cluster.chunkPath(i, id))).length;

  test('main marks it down and restores R=3 around it; reads stay correct', async () => {
    ip('link', 'set', HOST_END, 'down');
    const partedId = cluster.fileServers[PARTED]?.id;
    await waitFor(
      'the partitioned server marked down',
      async () => (await check()).servers.find((s) => s.id === partedId)?.state === 'down',
    );
    await waitFor(
      'R=3 on the reachable servers',
      () => chunkIds.every((id) => copies(id, [0, 1, 3]) === 3),
      30_000,
    );
    const out = collector();
    await user.fs.get('/p.bin', out.sink);
    assert.deepEqual(out.bytes(), data);
  });

  test('when the link comes back it reconciles, and its copies beyond R are removed', async () => {
    ip('link', 'set', HOST_END, 'up');
    const partedId = cluster.fileServers[PARTED]?.id;
    await waitFor(
      'the server up again',
      async () => (await check()).servers.find((s) => s.id === partedId)?.state === 'up',
      20_000,
    );
    await waitFor(
      'its surplus copies removed',
      () => chunkIds.every((id) => !existsSync(cluster.chunkPath(PARTED, id))),
      20_000,
    );
    for (const id of chunkIds) {
      assert.equal(copies(id, [0, 1, 2, 3]), 3, `chunk ${id} has exactly R copies`);
      for (const i of [0, 1, 3]) assert.equal(sha(readFileSync(cluster.chunkPath(i, id))), id);
    }
    const log = readFileSync(join(cluster.mainData, 'main.log'), 'utf8');
    assert.match(log, /a lost file server came back/);
    assert.match(log, /copies beyond the wanted count past their grace period queued for deletion/);
    const out = collector();
    await user.fs.get('/p.bin', out.sink);
    assert.deepEqual(out.bytes(), data);
  });
});
