import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { ClusterClient } from '../../../src/client/cluster-client.js';
import { sendChunk } from '../../../src/client/store-blob.js';
import { BufferPool } from '../../../src/common/buffer-pool.js';
import { ChunkReader } from '../../../src/common/chunk-reader.js';
import { createAgent, requestJson } from '../../../src/common/http-client.js';
import { createHttpApp } from '../../../src/common/http-server.js';
import { TlsIdentity } from '../../../src/common/tls.js';
import { generateTlsKey } from '../../../src/crypto/certificates.js';
import { createCa, issueCertificate } from '../../../src/crypto/cluster-ca.js';
import { generateTicketKeyPem, ticketSigner } from '../../../src/crypto/tickets.js';
import { forward } from '../../../src/file-server/chain-forward.js';
import type { FileServerContext } from '../../../src/file-server/context.js';
import { replicateChunkRoute } from '../../../src/file-server/routes/replicate-chunk.js';
import { ReplicaProver } from '../../../src/main-server/replica-prover.js';
import type { SedfsError } from '../../../src/protocol/errors.js';
import { TICKET_HEADER } from '../../../src/protocol/ticket.js';

/** The server id on the test server's certificate, and another the cluster knows. */
const [SHOWN, OTHER] = ['a1'.repeat(16), 'b2'.repeat(16)];
const CHUNK = Buffer.from('the bytes of a chunk');
let server: Server;
let url: string;
let ca: string;
let serverKey: ReturnType<typeof generateTlsKey>;
let serverCert: string;

before(async () => {
  const material = await createCa();
  ca = material.certPem;
  const key = generateTlsKey();
  serverKey = key;
  // A certificate the cluster's CA issued for this host, to the server SHOWN.
  const cert = await issueCertificate(material, {
    publicKeyPem: key.publicKeyPem,
    commonName: SHOWN,
    hosts: ['127.0.0.1'],
    lifetimeMs: 3600_000,
  });
  serverCert = cert;
  server = createServer({ key: key.keyPem, cert }, (req, res) => {
    if (req.url?.startsWith('/v1/chunks/') && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': CHUNK.length });
      res.end(CHUNK);
      return;
    }
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ receipts: [{ server: SHOWN, receipt: 'r' }], failed: [] }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(() => server.close());

const untrusted = (err: SedfsError) => {
  assert.equal(err.code, 'SEDFS_ERR_UNTRUSTED_SERVER');
  assert.match(err.message, /SEDFS_NOT_EXPECTED_SERVER_CERTIFICATE/);
  return true;
};

test("a connection to a file server's endpoint must show the certificate of a server expected there, not only one for its host", async () => {
  const tls = new TlsIdentity(ca);
  const expecting = (ids: string[] | undefined) => createAgent(tls, { serverNames: () => ids });
  for (const [ids, ok] of [
    [[OTHER], false],
    [[OTHER, SHOWN], true],
    [undefined, true], // no one in particular expected there: the host check alone
  ] as const) {
    const agent = expecting(ids as string[] | undefined);
    try {
      const answer = requestJson(agent, `${url}/v1/health`);
      if (ok) await answer;
      else await assert.rejects(answer, untrusted);
    } finally {
      await agent.close();
    }
  }
});

test('a client sends a chunk only to the server main placed it on, told by its certificate', async () => {
  const client = new ClusterClient('https://127.0.0.1:9', { ca });
  const placement = (id: string) => ({ chunk: 'ab'.repeat(32), servers: [{ id, url }], ticket: 't' });
  try {
    await assert.rejects(sendChunk(client, placement(OTHER), Buffer.alloc(10)), (err: SedfsError) => {
      assert.equal(err.code, 'SEDFS_ERR_REPLICATION_FAILED');
      assert.match(err.message, /SEDFS_NOT_EXPECTED_SERVER_CERTIFICATE/);
      return true;
    });
    // Its chunk reads name the server main named for each replica.
    await assert.rejects(
      client.chunks.get(
        `${url}/v1/chunks/${'ab'.repeat(32)}`,
        't',
        CHUNK.length,
        Buffer.alloc(CHUNK.length),
        [OTHER],
      ),
      untrusted,
    );
  } finally {
    await client.close();
  }
  const fresh = new ClusterClient('https://127.0.0.1:9', { ca });
  try {
    assert.equal((await sendChunk(fresh, placement(SHOWN), Buffer.alloc(10))).length, 1);
  } finally {
    await fresh.close();
  }
});

test('a file server forwards down the chain only to the server the ticket names, told by its certificate, whatever other forwards at once to that address name', async () => {
  // As file-server.ts wires it: each forward names the server its ticket names there.
  const agent = createAgent(new TlsIdentity(ca), { mainUrl: 'https://127.0.0.1:9' });
  const ctx = { tls: true, agent } as unknown as FileServerContext;
  const send = (server: string) => {
    const down = forward(ctx, `${url}/v1/chunks/${'ab'.repeat(32)}`, { 'content-length': '3' }, server);
    down.push(Buffer.from('abc'));
    down.end();
    return down.result();
  };
  try {
    const refused = (await send(OTHER)) as { error: SedfsError };
    assert.ok('error' in refused && untrusted(refused.error));
    assert.deepEqual(await send(SHOWN), { receipts: [{ server: SHOWN, receipt: 'r' }], failed: [] });
    const [other, shown] = await Promise.all([send(OTHER), send(SHOWN), send(OTHER)]);
    assert.ok('error' in (other as object));
    assert.deepEqual(shown, { receipts: [{ server: SHOWN, receipt: 'r' }], failed: [] });
  } finally {
    await agent.close();
  }
});

/** The test server's chunk, read with `reader` from its endpoint expecting server `expected` there. */
const readChunkExpecting = (reader: ChunkReader, expected: string) =>
  reader.get(`${url}/v1/chunks/${'ab'.repeat(32)}`, 't', CHUNK.length, Buffer.alloc(CHUNK.length), [
    expected,
  ]);

test('a chunk read names the server it expects for itself: reads at once at one endpoint naming different servers each check their own', async () => {
  const reader = new ChunkReader(new TlsIdentity(ca));
  const read = (server: string) => readChunkExpecting(reader, server);
  try {
    const [shown, other] = await Promise.allSettled([read(SHOWN), read(OTHER)]);
    assert.equal(shown.status, 'fulfilled');
    assert.ok(shown.value.equals(CHUNK));
    assert.equal(other.status, 'rejected');
    untrusted(other.reason);
    // And after: a connection kept for SHOWN does not serve a read naming OTHER.
    await assert.rejects(read(OTHER), untrusted);
    assert.ok((await read(SHOWN)).equals(CHUNK));
  } finally {
    reader.close();
  }
});

test('a repair copy is read only from the source its own ticket names, whatever copies at once from that address name', async () => {
  const app = createHttpApp(pino({ level: 'silent' }));
  const written: string[] = [];
  const ctx = {
    serverId: 'target',
    log: pino({ level: 'silent' }),
    now: Date.now,
    tls: false,
    chunkReader: new ChunkReader(new TlsIdentity(ca), { httpsOnly: true }),
    // Main's tickets, taken as checked: each names the source in its own header.
    keys: () => ({
      receiptKey: Buffer.alloc(32, 7).toString('base64url'),
      verifyTicket: (token: string) => ({ from: url, fromServer: token, upload: 'copy' }),
    }),
    store: {
      maxChunkBytes: 1024,
      // A wait between the ticket and the read, as a disk's is.
      ensureRoomFor: () => new Promise((resolve) => setTimeout(resolve, 20)),
      storeWhole: async (_id: string, b: Buffer) => void written.push(b.toString()),
    },
    copyBuffers: new BufferPool(1024, 2),
  } as unknown as FileServerContext;
  replicateChunkRoute(app, ctx);
  await app.ready();
  const copy = (source: string) =>
    app.inject({
      method: 'POST',
      url: `/v1/chunks/${'ab'.repeat(32)}/replicate`,
      headers: { [TICKET_HEADER]: source },
      payload: { sourceTicket: 's', size: CHUNK.length },
    });
  try {
    const [shown, other] = await Promise.all([copy(SHOWN), copy(OTHER)]);
    assert.equal(shown.statusCode, 200, shown.body);
    assert.deepEqual(written, [CHUNK.toString()]);
    assert.equal(other.json().error.code, 'SEDFS_ERR_UNTRUSTED_SERVER');
  } finally {
    ctx.chunkReader.close();
    await app.close();
  }
});

test('a kept-alive connection checked for one server is not reused once another server is expected at its endpoint', async () => {
  let expected = [SHOWN];
  const agent = createAgent(new TlsIdentity(ca), { serverNames: () => expected });
  let handshakes = 0;
  const count = () => handshakes++;
  server.on('secureConnection', count);
  // undici frees a connection for the next request just after its answer has been read.
  const settled = () => new Promise((resolve) => setImmediate(resolve));
  try {
    await requestJson(agent, `${url}/v1/health`);
    await settled();
    await requestJson(agent, `${url}/v1/health`);
    assert.equal(handshakes, 1, 'the second request went over the kept connection');
    await settled();
    expected = [OTHER];
    await assert.rejects(requestJson(agent, `${url}/v1/health`), untrusted);
    expected = [SHOWN];
    await requestJson(agent, `${url}/v1/health`);
  } finally {
    server.off('secureConnection', count);
    await agent.close();
  }
});

test('a kept chunk-read connection checked for one server is not reused for a read naming another server at its endpoint', async () => {
  const reader = new ChunkReader(new TlsIdentity(ca));
  const read = (expected: string) => readChunkExpecting(reader, expected);
  try {
    assert.ok((await read(SHOWN)).equals(CHUNK));
    await assert.rejects(read(OTHER), untrusted);
    assert.ok((await read(SHOWN)).equals(CHUNK));
  } finally {
    reader.close();
  }
});

test('the chunk reader keeps nothing for a set of expected ids once its kept connections closed', async () => {
  const reader = new ChunkReader(new TlsIdentity(ca));
  const kept = () => (reader as unknown as { idle: Map<string, unknown[]> }).idle.size;
  const served: Socket[] = [];
  const note = (socket: Socket) => served.push(socket);
  server.on('secureConnection', note);
  try {
    for (const ids of [[SHOWN], [SHOWN, OTHER]])
      await reader.get(
        `${url}/v1/chunks/${'ab'.repeat(32)}`,
        't',
        CHUNK.length,
        Buffer.alloc(CHUNK.length),
        ids,
      );
    assert.equal(kept(), 2);
    for (const socket of served) socket.destroy();
    // The reader hears of the closes when the event loop gets to them: soon, or later on a loaded machine.
    for (const deadline = Date.now() + 5000; kept() > 0 && Date.now() < deadline; )
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(kept(), 0);
  } finally {
    server.off('secureConnection', note);
    reader.close();
  }
});

/** Whether `socket` is closed, or closes within 2 s. */
const closed = (socket: Socket) =>
  socket.destroyed
    ? Promise.resolve(true)
    : Promise.race([
        once(socket, 'close').then(() => true),
        new Promise((resolve) => setTimeout(resolve, 2_000, false)),
      ]);

test('a pool for ids expected at an endpoint before the last two sets is closed: its kept connections close', async () => {
  const THIRD = 'c3'.repeat(16);
  let expected = [SHOWN];
  const agent = createAgent(new TlsIdentity(ca), { serverNames: () => expected });
  const sockets: Socket[] = [];
  const count = (socket: Socket) => sockets.push(socket);
  server.on('secureConnection', count);
  // Kept alive by the server far longer than the test waits.
  const keepAlive = server.keepAliveTimeout;
  server.keepAliveTimeout = 60_000;
  const settled = () => new Promise((resolve) => setImmediate(resolve));
  try {
    for (const ids of [[SHOWN], [SHOWN, OTHER], [SHOWN, THIRD]]) {
      expected = ids;
      await requestJson(agent, `${url}/v1/health`);
      await settled();
    }
    assert.equal(sockets.length, 3, 'a connection of its own for each set of ids');
    assert.equal(await closed(sockets[0] as Socket), true, 'the first set is no longer expected: closed');
    assert.equal(sockets[1]?.destroyed, false, 'the one before the last is kept');
    expected = [SHOWN, OTHER];
    await requestJson(agent, `${url}/v1/health`);
    assert.equal(sockets.length, 3, 'and used again');
  } finally {
    server.keepAliveTimeout = keepAlive;
    server.off('secureConnection', count);
    await agent.close();
  }
});

test('the pools of the endpoint used longest ago are closed beyond the most endpoints kept: its kept connections close', async () => {
  const agent = createAgent(new TlsIdentity(ca), { serverNames: () => [SHOWN], maxEndpoints: 2 });
  // Three endpoints: the test server's address, and two more servers showing its certificate.
  const more = await Promise.all(
    [0, 1].map(async () => {
      const other = createServer({ key: serverKey.keyPem, cert: serverCert }, (_req, res) => res.end('{}'));
      other.listen(0, '127.0.0.1');
      await once(other, 'listening');
      return other;
    }),
  );
  const sockets: Socket[] = [];
  const count = (socket: Socket) => sockets.push(socket);
  const servers = [server, ...more];
  for (const s of servers) {
    s.keepAliveTimeout = 60_000;
    s.on('secureConnection', count);
  }
  try {
    // The first endpoint is used again before the third: the second is the one used longest ago.
    for (const s of [server, more[0], server, more[1]] as Server[]) {
      await requestJson(agent, `https://127.0.0.1:${(s.address() as { port: number }).port}/v1/health`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(sockets.length, 3, 'a connection to each, the first one used twice');
    assert.equal(await closed(sockets[1] as Socket), true, 'the endpoint used longest ago: closed');
    assert.equal(sockets[0]?.destroyed, false, 'the two used last are kept');
    assert.equal(sockets[2]?.destroyed, false);
  } finally {
    for (const s of servers) s.off('secureConnection', count);
    server.keepAliveTimeout = 5_000;
    await agent.close();
    for (const s of more) s.close();
  }
});

test("main's read of a replica expects the server its ticket names, even where the registry has another at that address by then", async () => {
  // An address handover between the ticket and the request: the registry says OTHER.
  const agent = createAgent(new TlsIdentity(ca), { serverNames: () => [OTHER] });
  const signer = ticketSigner(generateTicketKeyPem());
  try {
    const prover = new ReplicaProver(signer, agent, Date.now);
    const id = createHash('sha256').update(CHUNK).digest('hex');
    assert.equal(await prover.prove(id, CHUNK.length, { id: SHOWN, url }), 'real');
  } finally {
    await agent.close();
  }
});

test('a JSON request to a file server expects the server it names, even where the registry has another at that address by then', async () => {
  const agent = createAgent(new TlsIdentity(ca), { serverNames: () => [OTHER] });
  try {
    assert.deepEqual(await requestJson(agent, `${url}/v1/scrub`, { body: {}, expectedIds: [SHOWN] }), {
      receipts: [{ server: SHOWN, receipt: 'r' }],
      failed: [],
    });
    await assert.rejects(requestJson(agent, `${url}/v1/scrub`, { body: {} }), untrusted);
  } finally {
    await agent.close();
  }
});
