import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from 'undici';
import { ClusterClient } from '../../../src/client/cluster-client.js';
import { DEFAULT_CHUNK_BYTES, OtherServers, sendChunk, storeChunks } from '../../../src/client/store-blob.js';
import { Unanswering } from '../../../src/client/unanswering.js';
import { sealChunk } from '../../../src/crypto/content.js';
import { SedfsError } from '../../../src/protocol/errors.js';
import type {
  PutChunkResponse,
  ReplicaFailure,
  StoredReceipt,
} from '../../../src/protocol/file-server-api.js';
import { DEFAULT_SEALED_CHUNK_BYTES } from '../../../src/protocol/file-server-api.js';

const CHUNK = 1024;

/**
 * A file server that stores nothing: it answers each chunk PUT after `delayMs`, with a
 * receipt, except the `failing`-th request (1-based), which gets a server error.
 */
async function chunkServer(failing: number, delayMs = 20) {
  let requests = 0;
  const server: Server = createServer((req, res) => {
    const n = ++requests;
    req.resume();
    req.on('end', async () => {
      await sleep(delayMs);
      if (n === failing) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'SEDFS_ERR_INTERNAL', message: 'disk on fire' } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ receipts: [{ server: 's1', receipt: 'r' }], failed: [] }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, requests: () => requests, close: () => server.close() };
}

/**
 * Enough of a ClusterClient for storeChunks: every chunk placed on the one server at
 * `url`; asked to leave it out, as main, there is no other.
 */
function fakeClient(url: string): { client: ClusterClient; close: () => Promise<void> } {
  const agent = new Agent();
  const client = {
    fileServerAgent: async () => agent,
    unanswering: new Unanswering(),
    placeAround: ClusterClient.prototype.placeAround,
    chunkUrl: (u: string) => u,
    beginUpload: async () => ({ uploadId: 'u1', replicas: 1, expiresAt: Date.now() + 60_000 }),
    place: async (_upload: string, chunks: { id: string; exclude?: string[] }[]) => {
      if (chunks.some((c) => c.exclude?.includes('s1'))) throw new SedfsError('SEDFS_ERR_NO_SERVERS');
      return { placements: chunks.map((c) => ({ chunk: c.id, servers: [{ id: 's1', url }], ticket: 't' })) };
    },
  };
  return { client: client as unknown as ClusterClient, close: () => agent.close() };
}

function* chunks(count: number): Generator<Buffer> {
  for (let i = 0; i < count; i++) yield Buffer.alloc(CHUNK, i);
}

test('a chunk that fails fails the put, and no chunk read ahead is sent after the failure is reported', async () => {
  const server = await chunkServer(3);
  const { client, close } = fakeClient(server.url);
  try {
    await assert.rejects(
      storeChunks(client, chunks(40), { chunkBytes: CHUNK, concurrency: 2 }),
      (err: SedfsError) => err.code === 'SEDFS_ERR_REPLICATION_FAILED' && /disk on fire/.test(err.message),
    );
    const seen = server.requests();
    await sleep(150);
    assert.equal(server.requests(), seen, 'requests arrived after the put had failed');
    assert.ok(seen < 40, `the put went on to send ${seen} of 40 chunks`);
  } finally {
    await close();
    server.close();
  }
});

test('a source that fails fails the put, and the chunks read before it are not sent afterwards', async () => {
  const server = await chunkServer(0);
  const { client, close } = fakeClient(server.url);
  function* failing(): Generator<Buffer> {
    yield* chunks(6);
    throw new Error('the local disk went away');
  }
  try {
    await assert.rejects(
      storeChunks(client, failing(), { chunkBytes: CHUNK, concurrency: 2 }),
      /the local disk went away/,
    );
    const seen = server.requests();
    await sleep(150);
    assert.equal(server.requests(), seen, 'requests arrived after the put had failed');
  } finally {
    await close();
    server.close();
  }
});

test('a default-sized chunk, sealed, is exactly the size file servers keep whole-chunk buffers for', () => {
  const versionId = randomBytes(16).toString('hex');
  const sealed = sealChunk(randomBytes(32), versionId, 0, false, Buffer.alloc(DEFAULT_CHUNK_BYTES));
  assert.equal(sealed.length, DEFAULT_SEALED_CHUNK_BYTES);
});

test('chunks larger than a send piece reach the server whole, byte for byte, with their exact length', async () => {
  const SIZE = 600 * 1024; // three pieces of 256 KiB, the last one short
  const sent = [randomBytes(SIZE), randomBytes(SIZE), randomBytes(SIZE - 1)];
  const received = new Map<string, { body: Buffer; length: string | undefined }>();
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (p: Buffer) => parts.push(p));
    req.on('end', () => {
      received.set((req.url as string).split('/').pop() as string, {
        body: Buffer.concat(parts),
        length: req.headers['content-length'],
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ receipts: [{ server: 's1', receipt: 'r' }], failed: [] }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { client, close } = fakeClient(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
  try {
    const stored = await storeChunks(client, sent.values(), { chunkBytes: SIZE, concurrency: 2 });
    assert.equal(stored.chunks.length, 3);
    for (const [i, chunk] of stored.chunks.entries()) {
      const got = received.get(chunk.id);
      assert.ok(got, `chunk ${i} never arrived`);
      assert.ok(got.body.equals(sent[i] as Buffer), `chunk ${i} arrived altered`);
      assert.equal(got.length, String((sent[i] as Buffer).length));
    }
  } finally {
    await close();
    server.close();
  }
});

test('a server that refuses a chunk before reading it and hangs up fails the put, without hanging', {
  timeout: 20_000,
}, async () => {
  const server = createServer((_req, res) => {
    res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
    res.end(
      JSON.stringify({ error: { code: 'SEDFS_ERR_BODY_TOO_LARGE', message: 'too large for this server' } }),
      () => res.socket?.destroy(),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { client, close } = fakeClient(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
  try {
    // 8 MiB chunks: far more than the socket takes before the server hangs up.
    const SIZE = 8 * 1024 * 1024;
    await assert.rejects(
      storeChunks(client, [Buffer.alloc(SIZE, 1), Buffer.alloc(SIZE, 2)].values(), { chunkBytes: SIZE }),
      (err: SedfsError) => err.code === 'SEDFS_ERR_REPLICATION_FAILED',
    );
  } finally {
    await close();
    server.close();
  }
});

/** A chain's answer for `server`: the chain broke before it. */
const notReachedBy = (server: string): ReplicaFailure => ({
  server,
  code: 'SEDFS_ERR_UNREACHABLE',
  message: 'down',
  attempted: false,
});

test('a chain whose answer names, as not reached, a server not further down it is tried no further', async () => {
  const notReached = notReachedBy;
  // s1 stores the chunk and says the chain broke before s2; s2, asked directly, names s1
  // (or s1 names itself) as not reached. Followed, such answers sent the chunk round the
  // same servers for ever.
  const cases: { title: string; answers: PutChunkResponse[]; stored?: StoredReceipt[] }[] = [
    {
      title: 'an earlier server',
      answers: [
        { receipts: [{ server: 's1', receipt: 'r1' }], failed: [notReached('s2')] },
        { receipts: [], failed: [notReached('s1')] },
      ],
      stored: [{ server: 's1', receipt: 'r1' }],
    },
    { title: 'itself', answers: [{ receipts: [], failed: [notReached('s1')] }] },
  ];
  for (const { title, answers, stored } of cases) {
    let requests = 0;
    const server = createServer((req, res) => {
      req.resume();
      // Past the answers scripted, one that ends what would otherwise be an endless loop.
      const answer = answers[requests++] ?? { receipts: [{ server: 's9', receipt: 'r9' }], failed: [] };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const { client, close } = fakeClient(url);
    const servers = [
      { id: 's1', url },
      { id: 's2', url },
    ];
    try {
      const sent = sendChunk(client, { chunk: 'c'.repeat(64), servers, ticket: 't' }, Buffer.alloc(CHUNK));
      if (stored) assert.deepEqual(await sent, stored, title);
      else
        await assert.rejects(sent, {
          code: 'SEDFS_ERR_REPLICATION_FAILED',
          message: /s1: named s1 as not reached, which is not further down the chain/,
        });
      assert.equal(requests, answers.length, title);
    } finally {
      await close();
      server.close();
    }
  }
});

test('a put asks main to make up for every server of the chain without a copy, reached or not, but not for one that refused the request itself', async () => {
  const cases: { title: string; status: number; answer: unknown; replicas?: number }[] = [
    {
      title: 'a head that names itself as not reached: the two after it were never tried',
      status: 200,
      answer: { receipts: [{ server: 's1', receipt: 'r1' }], failed: [notReachedBy('s1')] },
      replicas: 2,
    },
    {
      title: 'bytes damaged on the way to the second: another server may take them',
      status: 200,
      answer: {
        receipts: [
          { server: 's1', receipt: 'r1' },
          { server: 's3', receipt: 'r3' },
        ],
        failed: [
          { server: 's2', code: 'SEDFS_ERR_HASH_MISMATCH', message: 'not the chunk', attempted: true },
        ],
      },
      replicas: 1,
    },
    {
      title: 'the bytes the client sent are not the chunk: no other server would take them',
      status: 422,
      answer: { error: { code: 'SEDFS_ERR_HASH_MISMATCH', message: 'not the chunk' } },
    },
  ];
  for (const { title, status, answer, replicas } of cases) {
    const server = createServer((req, res) => {
      req.resume();
      // Only the head is ever sent to here: what it answers decides the rest.
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const { client, close } = fakeClient(url);
    const asked: { exclude?: string[]; replicas?: number }[] = [];
    (client as unknown as { place: unknown }).place = async (_u: string, chunks: typeof asked) => {
      asked.push(...chunks);
      throw new SedfsError('SEDFS_ERR_NO_SERVERS');
    };
    const servers = ['s1', 's2', 's3'].map((id) => ({ id, url: id === 's1' ? url : 'http://127.0.0.1:9' }));
    try {
      await sendChunk(client, { chunk: 'c'.repeat(64), servers, ticket: 't' }, Buffer.alloc(CHUNK), {
        uploadId: 'u1',
      }).catch(() => undefined);
      if (replicas === undefined) assert.deepEqual(asked, [], title);
      else {
        assert.equal(asked.length, 1, title);
        assert.deepEqual(asked[0]?.exclude, ['s1', 's2', 's3'], title);
        assert.equal(asked[0]?.replicas, replicas, title);
      }
    } finally {
      await close();
      server.close();
    }
  }
});

test('with its session to main over https, a client sends no chunk or ticket to, and reads none from, a file server at a plain http:// URL', async () => {
  const server = await chunkServer(0);
  const placement = { chunk: 'ab'.repeat(32), servers: [{ id: 's1', url: server.url }], ticket: 't' };
  const secure = new ClusterClient('https://127.0.0.1:9');
  const plain = new ClusterClient('http://127.0.0.1:9');
  try {
    await assert.rejects(sendChunk(secure, placement, Buffer.alloc(CHUNK)), (err: SedfsError) => {
      assert.equal(err.code, 'SEDFS_ERR_REPLICATION_FAILED');
      assert.match(err.message, /http:\/\/ URL in a cluster that runs over TLS/);
      return true;
    });
    assert.equal(server.requests(), 0, 'nothing reached it');
    assert.throws(() => secure.chunkUrl(server.url), { code: 'SEDFS_ERR_INSECURE_URL' });
    await assert.rejects(secure.chunks.get(`${server.url}/v1/chunks/ab`, 't', 1, Buffer.alloc(1)), {
      code: 'SEDFS_ERR_INSECURE_URL',
    });
    // A cluster on plain HTTP (--insecure-http) reaches its servers so.
    assert.equal((await sendChunk(plain, placement, Buffer.alloc(CHUNK))).length, 1);
    assert.equal(server.requests(), 1);
  } finally {
    await secure.close();
    await plain.close();
    server.close();
  }
});

test('the first ask for servers outside a chain is answered before any other leaving out the same ones; a refusal then holds for chunks as big or bigger, for a while', async () => {
  let now = 1_000;
  const others = new OtherServers(10_000, () => now);
  let asked = 0;
  const refuse = async () => {
    asked++;
    await sleep(20);
    throw new SedfsError('SEDFS_ERR_NO_SERVERS');
  };
  const abc = ['a', 'b', 'c'];
  // Ten chunks of one chain at once: one ask, and every one gets no server.
  const answers = await Promise.all(Array.from({ length: 10 }, () => others.place(abc, 100, refuse)));
  assert.equal(asked, 1);
  assert.deepEqual(answers, Array(10).fill(undefined));
  assert.equal(
    await others.place(['c', 'b', 'a', 'd'], 100, refuse),
    undefined,
    'leaving out more finds none either',
  );
  assert.equal(asked, 1);
  await others.place(abc, 99, refuse);
  assert.equal(asked, 2, 'a smaller chunk may fit where this one did not');
  await others.place(['a', 'b', 'd'], 100, refuse);
  assert.equal(asked, 3, 'c may have room');
  now += 10_001;
  await others.place(abc, 100, refuse);
  assert.equal(asked, 4, 'a server may have come up');
  // Once one ask was answered with servers, the others go out together.
  let inFlight = 0;
  let most = 0;
  const offer = async () => {
    inFlight++;
    most = Math.max(most, inFlight);
    await sleep(20);
    inFlight--;
    return 'placed';
  };
  const xyz = ['x', 'y', 'z'];
  assert.equal(await others.place(xyz, 100, offer), 'placed');
  const placed = await Promise.all(Array.from({ length: 5 }, () => others.place(xyz, 100, offer)));
  assert.deepEqual(placed, Array(5).fill('placed'));
  assert.equal(most, 5);
});

/** A file server that stores nothing and answers every chunk PUT with a receipt of `name`'s. */
async function receiptServer(name: string) {
  let hits = 0;
  const server = createServer((req, res) => {
    hits += 1;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ receipts: [{ server: name, receipt: `r-${name}` }], failed: [] }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, hits: () => hits, close: () => server.close() };
}

test('a chain head found not answering lately is passed over for the next, and its copy is made elsewhere; alone in its chain, it is still tried', async () => {
  const [s1, s2, s3] = await Promise.all(['s1', 's2', 's3'].map(receiptServer));
  const { client, close } = fakeClient('unused');
  const asked: { exclude?: string[]; replicas?: number }[] = [];
  (client as unknown as { place: unknown }).place = async (_u: string, chunks: typeof asked) => {
    asked.push(...chunks);
    return { placements: [{ chunk: 'c'.repeat(64), servers: [{ id: 's3', url: s3?.url }], ticket: 't' }] };
  };
  try {
    client.unanswering.note('s1', 'took no data for 10 s');
    const servers = [
      { id: 's1', url: s1?.url as string },
      { id: 's2', url: s2?.url as string },
    ];
    const receipts = await sendChunk(
      client,
      { chunk: 'c'.repeat(64), servers, ticket: 't' },
      Buffer.alloc(CHUNK),
      {
        uploadId: 'u1',
      },
    );
    assert.deepEqual(
      receipts.map((r) => r.server),
      ['s2', 's3'],
    );
    assert.equal(s1?.hits(), 0, 'the server not answering was not sent to');
    assert.deepEqual(asked[0]?.exclude, ['s1', 's2']);
    assert.equal(asked[0]?.replicas, 1);

    const alone = await sendChunk(
      client,
      { chunk: 'c'.repeat(64), servers: [servers[0] as (typeof servers)[0]], ticket: 't' },
      Buffer.alloc(CHUNK),
    );
    assert.deepEqual(
      alone.map((r) => r.server),
      ['s1'],
    );
    assert.equal(s1?.hits(), 1);
  } finally {
    await close();
    for (const s of [s1, s2, s3]) s?.close();
  }
});
