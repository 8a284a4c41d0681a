import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import type { ContentResponse } from '../../src/protocol/namespace-api.js';
import { TICKET_HEADER } from '../../src/protocol/ticket.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser } from '../helpers/users.js';

let cluster: TestCluster;
before(async () => {
  cluster = await TestCluster.start({ servers: 1, replicas: 1 });
});
after(() => cluster?.stop());

test('a file server killed with SIGKILL in the middle of a chunk write shows no partial chunk after restart', async () => {
  const bytes = seededBytes(5, 4 * 1024 * 1024);
  const id = createHash('sha256').update(bytes).digest('hex');
  const client = await cluster.client();
  const upload = await client.beginUpload(1);
  const { placements } = await client.place(upload.uploadId, [{ id, size: bytes.length }]);
  const target = placements[0]?.servers[0] as { id: string; url: string };
  const fs = cluster.fileServers[0] as { data: string; id: string };
  assert.equal(target.id, fs.id);

  // Send the first megabyte, then stall as a slow client would.
  const body = new PassThrough();
  const pending = request(`${target.url}/v1/chunks/${id}`, {
    dispatcher: cluster.agent,
    method: 'PUT',
    headers: {
      'content-type': 'application/octet-stream',
      'content-length': String(bytes.length),
      [TICKET_HEADER]: placements[0]?.ticket as string,
    },
    body,
  }).catch((err: Error) => err);
  body.write(bytes.subarray(0, 1024 * 1024));
  const tmp = join(fs.data, 'tmp');
  await waitFor('the partial write in tmp/', () => readdirSync(tmp).some((n) => n.endsWith('.part')));

  await cluster.killFileServer(0);
  body.destroy();
  assert.ok((await pending) instanceof Error);
  assert.equal(existsSync(cluster.chunkPath(0, id)), false);

  await cluster.startFileServer(0);
  await cluster.waitUp(1);
  assert.deepEqual(readdirSync(tmp), []);
  assert.equal(existsSync(cluster.chunkPath(0, id)), false);
  const server = (await cluster.servers())[0];
  assert.equal(server?.chunkCount, 0);
});

test('readers that hang up in the middle of a chunk never take the file server down', async () => {
  const { client, fs } = await newUser(cluster, 'quitter');
  try {
    const data = seededBytes(8, 8 * 1024 * 1024);
    await fs.put([data], '/two-chunks.bin');
    const node = await fs.resolve('/two-chunks.bin');
    const { manifest } = await client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
    const chunk = manifest.chunks[0] as ContentResponse['manifest']['chunks'][number];
    assert.ok(chunk.size > 2 * 1024 * 1024, 'a chunk the server sends in more than one read');
    // Each reader takes the answer's head and hangs up while the body is being sent:
    // the server's pending socket write fails while it reads the chunk's next block.
    for (let i = 0; i < 30; i++) {
      const res = await request(`${chunk.replicas[0]?.url}/v1/chunks/${chunk.id}`, {
        dispatcher: cluster.agent,
        headers: { [TICKET_HEADER]: chunk.ticket },
      });
      assert.equal(res.statusCode, 200);
      res.body.destroy();
    }
    const server = cluster.fileServers[0]?.process.proc;
    assert.equal(server?.exitCode, null, cluster.fileServers[0]?.process.output().slice(-2000));
    const out = collector();
    await fs.get('/two-chunks.bin', out.sink);
    assert.deepEqual(out.bytes(), data);
  } finally {
    await client.close();
  }
});
