import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { ChunkReader } from '../../../src/common/chunk-reader.js';
import { TlsIdentity } from '../../../src/common/tls.js';
import { generateTlsKey } from '../../../src/crypto/certificates.js';
import { createCa, issueCertificate } from '../../../src/crypto/cluster-ca.js';
import type { SedfsError } from '../../../src/protocol/errors.js';
import { TICKET_HEADER } from '../../../src/protocol/ticket.js';

const CHUNK = randomBytes(300 * 1024);

/** Starts `server` on 127.0.0.1 and counts the connections it accepts. */
async function listen(
  server: Server,
): Promise<{ url: string; connections: () => number; dropAll: () => void; close: () => void }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `127.0.0.1:${port}`,
    connections: () => connections,
    dropAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** A file server's chunk route, as far as the reader sees it. */
function chunkRoute(req: IncomingMessage, res: ServerResponse): void {
  if (req.headers[TICKET_HEADER] !== 'good-ticket') {
    const body = JSON.stringify({
      error: { code: 'SEDFS_ERR_CHUNK_NOT_FOUND', message: 'no such chunk here' },
    });
    res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': CHUNK.length });
  res.end(CHUNK);
}

/** Runs `body` with a reader and a chunk server, closing both afterwards. */
async function withChunkServer(
  body: (server: Awaited<ReturnType<typeof listen>>, reader: ChunkReader) => Promise<void>,
): Promise<void> {
  const server = await listen(createHttpServer(chunkRoute));
  const reader = new ChunkReader();
  try {
    await body(server, reader);
  } finally {
    reader.close();
    server.close();
  }
}

/** Reads the test chunk from `hostPort` over plain HTTP into a buffer of the chunk's size. */
function readChunk(reader: ChunkReader, hostPort: string, ticket = 'good-ticket', size = CHUNK.length) {
  return reader.get(`http://${hostPort}/v1/chunks/ab`, ticket, size, Buffer.alloc(CHUNK.length));
}

test('chunks are read whole, one after another over one kept connection', async () => {
  await withChunkServer(async (server, reader) => {
    for (let i = 0; i < 3; i++) {
      const got = await readChunk(reader, server.url);
      assert.ok(got.equals(CHUNK));
    }
    assert.equal(server.connections(), 1);
  });
});

test("an error answer becomes the server's own error, code and message", async () => {
  await withChunkServer(async (server, reader) => {
    await assert.rejects(
      readChunk(reader, server.url, 'wrong-ticket'),
      (err: SedfsError) => err.code === 'SEDFS_ERR_CHUNK_NOT_FOUND' && err.message === 'no such chunk here',
    );
  });
});

test('an answer longer than the chunk is returned empty, unread, and its connection is not reused', async () => {
  await withChunkServer(async (server, reader) => {
    const short = CHUNK.length - 1;
    const got = await readChunk(reader, server.url, 'good-ticket', short);
    assert.equal(got.length, 0);
    const again = await readChunk(reader, server.url);
    assert.ok(again.equals(CHUNK));
    assert.equal(server.connections(), 2);
  });
});

test('a kept connection the server has closed is replaced without an error', async () => {
  await withChunkServer(async (server, reader) => {
    const url = `http://${server.url}/v1/chunks/ab`;
    await reader.get(url, 'good-ticket', CHUNK.length, Buffer.alloc(CHUNK.length));
    // Closed by the server just as the client takes it up again (the client has not yet seen it go).
    server.dropAll();
    const got = await reader.get(url, 'good-ticket', CHUNK.length, Buffer.alloc(CHUNK.length));
    assert.ok(got.equals(CHUNK));
    assert.equal(server.connections(), 2);
  });
});

test('a kept connection that receives bytes nobody asked for is dropped, and the next chunk comes over a new one', async () => {
  const head = `HTTP/1.1 200 OK\r\ncontent-length: ${CHUNK.length}\r\n\r\n`;
  let stray: (() => void) | undefined;
  const server = await listen(
    createTcpServer((s) => {
      s.on('data', () => {
        s.write(Buffer.concat([Buffer.from(head, 'latin1'), CHUNK]));
        // Once the answer is read, bytes no request asked for: the connection is out of step.
        stray = () => s.write('HTTP/1.1 200 OK\r\n');
      });
      s.on('error', () => undefined);
    }),
  );
  const reader = new ChunkReader();
  try {
    assert.ok((await readChunk(reader, server.url)).equals(CHUNK));
    stray?.();
    // Until the reader has seen them and dropped the connection (soon, or later on a
    // loaded machine): bytes that came after the next request went out are another case.
    const kept = () => (reader as unknown as { idle: Map<string, unknown[]> }).idle.size;
    for (const deadline = Date.now() + 5000; kept() > 0 && Date.now() < deadline; )
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(kept(), 0, 'the connection out of step is no longer kept');
    assert.ok((await readChunk(reader, server.url)).equals(CHUNK));
    assert.equal(server.connections(), 2);
  } finally {
    reader.close();
    server.close();
  }
});

/** A server that answers every request with `answer` (head and body as raw bytes), then does `after`. */
async function rawServer(answer: string | Buffer, after: 'close' | 'keep' = 'close') {
  return listen(
    createTcpServer((s) => {
      s.once('data', () => {
        s.write(answer);
        if (after === 'close') s.destroy();
      });
      s.on('error', () => undefined);
    }),
  );
}

test('a body cut short, an answer without a length and an endless head are refused with clear errors', async () => {
  const reader = new ChunkReader();
  const cases: [string | Buffer, RegExp][] = [
    [
      'HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly ten b',
      /closed the connection before the whole chunk arrived/,
    ],
    [
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      /answered with transfer-encoding chunked/,
    ],
    ['HTTP/1.1 200 OK\r\n\r\nno length', /answered with no content-length/],
    ['SMTP ready\r\n\r\n', /answered with a malformed status line/],
    [`HTTP/1.1 200 OK\r\nx-filler: ${'a'.repeat(20_000)}`, /answered with a head over 16 KiB/],
  ];
  for (const [answer, expected] of cases) {
    const server = await rawServer(answer, answer.toString().includes('filler') ? 'keep' : 'close');
    try {
      await assert.rejects(
        reader.get(`http://${server.url}/v1/chunks/ab`, 'good-ticket', 1000, Buffer.alloc(1000)),
        (err: Error) => expected.test(err.message),
      );
    } finally {
      server.close();
    }
  }
  reader.close();
});

test('a ticket that could end a line of the request is refused before anything is sent', async () => {
  await withChunkServer(async (server, reader) => {
    await assert.rejects(
      reader.get(`http://${server.url}/v1/chunks/ab`, 'good-ticket\r\nx-evil: 1', 10, Buffer.alloc(10)),
      (err: SedfsError) => err.code === 'SEDFS_ERR_BAD_REQUEST',
    );
    assert.equal(server.connections(), 0);
  });
});

test('over TLS a server of the trusted CA is read, one of another CA is refused as untrusted', async () => {
  const trusted = await createCa();
  const other = await createCa();
  const serve = async (ca: typeof trusted) => {
    const key = generateTlsKey();
    const cert = await issueCertificate(ca, {
      publicKeyPem: key.publicKeyPem,
      commonName: 'fs-test',
      hosts: ['127.0.0.1'],
      lifetimeMs: 3600_000,
    });
    return listen(createHttpsServer({ key: key.keyPem, cert }, chunkRoute));
  };
  const good = await serve(trusted);
  const bad = await serve(other);
  const reader = new ChunkReader(new TlsIdentity(trusted.certPem));
  try {
    const got = await reader.get(
      `https://${good.url}/v1/chunks/ab`,
      'good-ticket',
      CHUNK.length,
      Buffer.alloc(CHUNK.length),
    );
    assert.ok(got.equals(CHUNK));
    await assert.rejects(
      reader.get(`https://${bad.url}/v1/chunks/ab`, 'good-ticket', CHUNK.length, Buffer.alloc(CHUNK.length)),
      (err: SedfsError) => err.code === 'SEDFS_ERR_UNTRUSTED_SERVER',
    );
  } finally {
    reader.close();
    good.close();
    bad.close();
  }
});

test('a reader that trusts the cluster CA refuses a plain http:// URL before it connects; one without a CA, or told so, reads it', async () => {
  const server = await listen(createHttpServer(chunkRoute));
  const ca = (await createCa()).certPem;
  const secure = new ChunkReader(new TlsIdentity(ca));
  const told = new ChunkReader(new TlsIdentity(ca), { httpsOnly: false });
  const plain = new ChunkReader();
  try {
    await assert.rejects(
      readChunk(secure, server.url),
      (err: SedfsError) => err.code === 'SEDFS_ERR_INSECURE_URL',
    );
    assert.equal(server.connections(), 0);
    assert.ok((await readChunk(told, server.url)).equals(CHUNK));
    assert.ok((await readChunk(plain, server.url)).equals(CHUNK));
  } finally {
    for (const r of [secure, told, plain]) r.close();
    server.close();
  }
});
