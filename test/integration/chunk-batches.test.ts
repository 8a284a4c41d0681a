import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { ClusterClient } from '../../src/client/cluster-client.js';
import type { FileSystem } from '../../src/client/file-system.js';
import { sendBatch, sendChunk } from '../../src/client/store-blob.js';
import { MAX_BATCH_CHUNKS, SIZES_HEADER } from '../../src/protocol/file-server-api.js';
import type { Placement, PlacementBatch } from '../../src/protocol/main-api.js';
import { TICKET_HEADER } from '../../src/protocol/ticket.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser } from '../helpers/users.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('small chunks go down their chain in batches, each chunk checked, each server storing a batch as one pack', () => {
  let cluster: TestCluster;
  let client: ClusterClient;

  before(async () => {
    cluster = await TestCluster.start({ servers: 3, replicas: 3 });
    client = await cluster.client();
  });
  after(() => cluster?.stop());

  /** Places `n` small chunks at R=3 and returns them with main's batches. */
  async function placeSmall(n: number, seed: number, size = 3000) {
    const chunks = Array.from({ length: n }, (_, i) => seededBytes(seed * 1000 + i, size + i));
    const upload = await client.beginUpload(3);
    const res = await client.place(
      upload.uploadId,
      chunks.map((c) => ({ id: sha(c), size: c.length })),
    );
    const byId = new Map(chunks.map((c) => [sha(c), c]));
    return { upload, res, byId };
  }

  /** `n` small files named `prefix0`, `prefix1`, …, with seeded bytes of `size(i)`. */
  const smallFiles = (n: number, prefix: string, seed: number, size: (i: number) => number) =>
    Array.from({ length: n }, (_, i) => ({ name: `${prefix}${i}`, data: seededBytes(seed + i, size(i)) }));

  /** Reads every file back from `folder` and checks its bytes. */
  async function readsBack(fs: FileSystem, folder: string, files: { name: string; data: Buffer }[]) {
    for (const f of files) {
      const out = collector();
      await fs.get(`${folder}/${f.name}`, out.sink);
      assert.ok(out.bytes().equals(f.data), f.name);
    }
  }

  const holders = (id: string) =>
    cluster.fileServers.filter((_, i) => cluster.storedChunk(i, id) !== undefined).length;

  test('main groups small chunks by chain, each group under one ticket and no bigger than a batch may be', async () => {
    const { res } = await placeSmall(120, 1);
    const batches = res.batches ?? [];
    assert.ok(batches.length > 0);
    const chainOf = new Map(res.placements.map((p) => [p.chunk, p.servers.map((s) => s.id).join(',')]));
    const seen = new Set<string>();
    for (const b of batches) {
      assert.ok(b.chunks.length >= 2 && b.chunks.length <= MAX_BATCH_CHUNKS);
      for (const id of b.chunks) {
        assert.equal(chainOf.get(id), b.servers.map((s) => s.id).join(','), 'a batch is one chain');
        assert.ok(!seen.has(id), 'a chunk is in one batch');
        seen.add(id);
      }
    }
  });

  test('a batch stores every chunk on every server of its chain, with a receipt main accepts', async () => {
    const { upload, res, byId } = await placeSmall(40, 2);
    const batch = (res.batches ?? [])[0] as PlacementBatch;
    const answer = await sendBatch(
      client,
      batch,
      batch.chunks.map((id) => byId.get(id) as Buffer),
    );
    assert.equal(answer.results.length, batch.chunks.length);
    batch.chunks.forEach((id, k) => {
      assert.equal(answer.results[k]?.receipts.length, 3);
      assert.deepEqual(answer.results[k]?.failed, []);
      assert.equal(holders(id), 3);
      for (let i = 0; i < 3; i++) assert.ok(cluster.storedChunk(i, id)?.equals(byId.get(id) as Buffer));
    });
    const committed = await client.commit(
      upload.uploadId,
      batch.chunks.map((id, k) => ({
        id,
        size: (byId.get(id) as Buffer).length,
        receipts: answer.results[k]?.receipts ?? [],
      })),
    );
    assert.ok(committed.blobId);
  });

  // Main signs each batch once and none of its chunks alone (`batchTickets`): a chunk a
  // client must send alone (its batch failed) goes under its batch's ticket.
  test("a batched chunk sent alone under its batch's ticket is stored on its whole chain, and commits", async () => {
    const { upload, res, byId } = await placeSmall(40, 5);
    const batch = (res.batches ?? [])[0] as PlacementBatch;
    const id = batch.chunks[1] as string;
    const placement = res.placements.find((p) => p.chunk === id);
    assert.equal(placement?.ticket, batch.ticket, "the client gave it its batch's ticket");
    const receipts = await sendChunk(client, placement as Placement, byId.get(id) as Buffer);
    assert.equal(receipts.length, 3);
    assert.equal(holders(id), 3);
    const committed = await client.commit(upload.uploadId, [
      { id, size: (byId.get(id) as Buffer).length, receipts },
    ]);
    assert.equal(committed.underReplicated, 0);
  });

  test('a wrong chunk stops the batch at the head, and no server keeps that chunk', async () => {
    // Over 64 KiB: a server fed by a verified upstream would not hash these itself.
    const { res, byId } = await placeSmall(40, 3, 70_000);
    const batch = (res.batches ?? []).find((b) => b.chunks.length >= 3) as PlacementBatch;
    const bad = batch.chunks[1] as string;
    const bodies = batch.chunks.map((id) => Buffer.from(byId.get(id) as Buffer));
    const wrong = bodies[1] as Buffer;
    wrong[10] = (wrong[10] as number) ^ 0xff;
    await assert.rejects(sendBatch(client, batch, bodies), { code: 'SEDFS_ERR_HASH_MISMATCH' });
    // The rest of the chain saw its request cut before the bad chunk's last byte.
    await waitFor('no server to hold the bad chunk', () => holders(bad) === 0, 5000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(holders(bad), 0);
  });

  test('a chunk placed twice goes into no batch twice', async () => {
    const chunk = seededBytes(77, 5000);
    const upload = await client.beginUpload(3);
    const twice = Array.from({ length: 40 }, () => ({ id: sha(chunk), size: chunk.length }));
    const res = await client.place(upload.uploadId, twice);
    const named = (res.batches ?? []).flatMap((b) => b.chunks);
    assert.ok(named.length <= 1);
  });

  test('sizes that do not fit the ticket, or a body longer than they say, are refused', async () => {
    const { res, byId } = await placeSmall(40, 4);
    const batch = (res.batches ?? [])[0] as PlacementBatch;
    const bodies = batch.chunks.map((id) => byId.get(id) as Buffer);
    const url = `${batch.servers[0]?.url}/v1/chunks`;
    const send = async (sizes: string, body: Buffer) => {
      const r = await request(url, {
        dispatcher: cluster.agent,
        method: 'PUT',
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(body.length),
          [TICKET_HEADER]: batch.ticket,
          [SIZES_HEADER]: sizes,
        },
        body,
      });
      return ((await r.body.json()) as { error?: { code: string } }).error?.code;
    };
    const all = Buffer.concat(bodies);
    const sizes = bodies.map((b) => b.length);
    assert.equal(await send(sizes.slice(1).join(','), all), 'SEDFS_ERR_BAD_REQUEST');
    assert.equal(await send([...sizes.slice(0, -1), 0].join(','), all), 'SEDFS_ERR_BAD_REQUEST');
    assert.equal(
      await send(sizes.join(','), Buffer.concat([all, Buffer.from('x')])),
      'SEDFS_ERR_BAD_REQUEST',
    );
    assert.equal(await send(`${sizes.join(',')},`, all), 'SEDFS_ERR_BAD_REQUEST');
  });

  test('a folder of small files put in one go reads back byte for byte', async () => {
    const user = await newUser(cluster, 'batcher');
    try {
      await user.fs.mkdir('/many');
      const files = smallFiles(150, 'f', 50_000, (i) => 100 + i * 7);
      await user.fs.putMany('/many', files);
      await readsBack(user.fs, '/many', files);
    } finally {
      await user.client.close();
    }
  });

  test('packed chunks survive a SIGKILL of their server and are read from it alone after its restart', async () => {
    const user = await newUser(cluster, 'survivor');
    try {
      await user.fs.mkdir('/kept');
      const files = smallFiles(60, 'k', 60_000, (i) => 900 + i);
      await user.fs.putMany('/kept', files);
      await cluster.killFileServer(0);
      await cluster.startFileServer(0);
      await cluster.killFileServer(1);
      await cluster.killFileServer(2);
      await readsBack(user.fs, '/kept', files);
    } finally {
      await user.client.close();
      await cluster.startFileServer(1);
      await cluster.startFileServer(2);
      await cluster.waitUp(3);
    }
  });
});
