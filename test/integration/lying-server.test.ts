import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type Agent, request } from 'undici';
import { createAgent } from '../../src/common/http-client.js';
import { TlsIdentity } from '../../src/common/tls.js';
import { generateTlsKey } from '../../src/crypto/certificates.js';
import type { ContentResponse } from '../../src/protocol/namespace-api.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser, type TestUser } from '../helpers/users.js';

const CHUNK = 64 * 1024;

let cluster: TestCluster;
let user: TestUser;
let chunkIds: string[];
const data = seededBytes(61, 4 * CHUNK);

before(async () => {
  cluster = await TestCluster.start({ servers: 3, replicas: 3, mainArgs: ['--extra-grace', '1'] });
  await cluster.waitUp(3);
  user = await newUser(cluster, 'victim');
  await user.fs.put([data], '/v.bin', { chunkBytes: CHUNK });
  const node = await user.fs.resolve('/v.bin');
  const content = await user.client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
  chunkIds = content.manifest.chunks.map((c) => c.id);
});
after(async () => {
  await user?.client.close();
  await cluster?.stop();
});

/**
 * A file server that holds nothing: enrolled with the join token like any other, so its
 * certificate is valid, it registers at the URL of an HTTPS server that answers every
 * request 404, and beats claiming every chunk of the file and a nearly empty disk.
 */
async function startLiar(claims: string[]): Promise<{ asked: string[]; stop: () => Promise<void> }> {
  const id = randomBytes(16).toString('hex');
  const key = generateTlsKey();
  const enrolled = await request(`${cluster.mainUrl}/v1/servers/enroll`, {
    dispatcher: cluster.agent,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${cluster.joinToken}` },
    body: JSON.stringify({ id, publicKey: key.publicKeyPem }),
  });
  assert.equal(enrolled.statusCode, 200);
  const { cert } = (await enrolled.body.json()) as { cert: string };
  const asked: string[] = [];
  const server: Server = createServer({ key: key.keyPem, cert }, (req, res) => {
    asked.push(`${req.method} ${req.url}`);
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"SEDFS_ERR_CHUNK_NOT_FOUND","message":"no such chunk on this server"}}');
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as { port: number }).port;
  const agent: Agent = createAgent(
    new TlsIdentity(cluster.ca as string, { certPem: cert, keyPem: key.keyPem }),
  );
  const stats = { totalBytes: 2 ** 50, freeBytes: 2 ** 50 - 1, usedBytes: 1, chunkCount: claims.length };
  const call = async (path: string, body: unknown) => {
    const res = await request(`${cluster.mainUrl}${path}`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(res.statusCode, 200, `${path}: ${await res.body.text()}`);
  };
  await call('/v1/servers/register', { id, port, url: `https://127.0.0.1:${port}`, stats });
  let beating = true;
  // Every beat claims the chunks again, as a liar that keeps at it would.
  const beats = (async () => {
    while (beating) {
      await call(`/v1/servers/${id}/heartbeat`, { ...stats, added: claims });
      await delay(300);
    }
  })();
  return {
    asked,
    async stop() {
      beating = false;
      await beats;
      await agent.close();
      server.close();
    },
  };
}

test('a file server that claims chunks it does not hold gets no real copy deleted: main reads the copies it keeps first', async () => {
  const liar = await startLiar(chunkIds);
  try {
    const log = () => readFileSync(join(cluster.mainData, 'main.log'), 'utf8');
    // The claims make each chunk one copy over R=3; with its disk nearly empty, the
    // liar's copy is the last one picked to go, so the surplus copies noted are honest ones.
    await waitFor(
      'the claims noted as surplus',
      () => /copies beyond the wanted count found/.test(log()),
      15_000,
    );
    // Several grace periods (1 s each) and deleter passes go by.
    await delay(6000);
    for (const id of chunkIds)
      for (const i of [0, 1, 2])
        assert.ok(cluster.storedChunk(i, id), `chunk ${id} is still on honest server ${i}`);
    assert.ok(
      chunkIds.every((id) => liar.asked.includes(`GET /v1/chunks/${id}`)),
      'main read back the claimed copies',
    );
    assert.match(log(), /a surplus copy is kept/);
    assert.doesNotMatch(log(), /past their grace period queued for deletion/);
  } finally {
    await liar.stop();
  }
  const out = collector();
  await user.fs.get('/v.bin', out.sink);
  assert.deepEqual(out.bytes(), data);
});
