import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as connectTls, createServer as createTlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { createHttpApp } from '../../../src/common/http-server.js';
import { TlsIdentity } from '../../../src/common/tls.js';
import { generateTlsKey } from '../../../src/crypto/certificates.js';
import { createCa, issueCertificate } from '../../../src/crypto/cluster-ca.js';
import { ChunkStore } from '../../../src/file-server/chunk-store.js';
import type { FileServerContext } from '../../../src/file-server/context.js';
import { bytesTaken, getChunkRoute } from '../../../src/file-server/routes/get-chunk.js';
import { TICKET_HEADER } from '../../../src/protocol/ticket.js';

const root = mkdtempSync(join(tmpdir(), 'sedfs-get-'));
const lines: string[] = [];
const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
const app = createHttpApp(log);
const store = new ChunkStore(root, 32 * 1024 * 1024);
// More than the kernel buffers of both ends of a loopback connection hold.
const bytes = randomBytes(24 * 1024 * 1024);
const id = createHash('sha256').update(bytes).digest('hex');
let port = 0;
/**
 * Servers on Unix sockets, plain and TLS, with a longer idle time. Over loopback TCP the
 * kernel's buffers grow to megabytes and it takes a slow reader's bytes in bursts of a
 * megabyte or more, seconds apart; a Unix socket's buffer stays ~200 KiB, so a steady
 * reader is seen taking bytes several times per idle time, as over a slow network link.
 */
const SLOW_IDLE_MS = 1500;
const unixApps: { name: string; path: string; app: FastifyInstance; ca?: string }[] = [];
let tls: TlsIdentity;

const routeContext = (sendIdleMs: number, sendMinBytesPerSecond?: number) =>
  ({
    serverId: 'fs-test',
    store,
    log,
    now: Date.now,
    keys: () => ({ receiptKey: '', verifyTicket: () => ({}) }),
    sendIdleMs,
    sendMinBytesPerSecond,
  }) as unknown as FileServerContext;

before(async () => {
  await store.init();
  mkdirSync(dirname(store.pathOf(id)), { recursive: true });
  writeFileSync(store.pathOf(id), bytes);
  getChunkRoute(app, routeContext(300));
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;

  const ca = await createCa();
  const key = generateTlsKey();
  const cert = await issueCertificate(ca, {
    publicKeyPem: key.publicKeyPem,
    commonName: 'fs-test',
    hosts: ['127.0.0.1'],
    lifetimeMs: 3600_000,
  });
  tls = new TlsIdentity(ca.certPem, { certPem: cert, keyPem: key.keyPem });
  for (const [name, identity] of [
    ['plain', undefined],
    ['TLS', tls],
  ] as const) {
    const unixApp = createHttpApp(log, identity);
    getChunkRoute(unixApp, routeContext(SLOW_IDLE_MS));
    const path = join(root, `${name}.sock`);
    await unixApp.listen({ path });
    unixApps.push({ name, path, app: unixApp, ...(identity ? { ca: ca.certPem } : {}) });
  }
  // Whole chunks must go at 6 MB/s or more: the 24 MiB chunk may take ~4.2 s.
  const strictApp = createHttpApp(log);
  getChunkRoute(strictApp, routeContext(SLOW_IDLE_MS, 6_000_000));
  const strictPath = join(root, 'strict.sock');
  await strictApp.listen({ path: strictPath });
  unixApps.push({ name: 'strict', path: strictPath, app: strictApp });
});
// The server closes whatever is left (forceCloseConnections), so a failed test cannot hang the run.
after(async () => {
  await app.close();
  for (const u of unixApps) await u.app.close();
  rmSync(root, { recursive: true, force: true });
});

const until = async (what: () => boolean) => {
  while (!what()) await new Promise((r) => setTimeout(r, 10));
};

const REQUEST = `GET /v1/chunks/${id} HTTP/1.1\r\nhost: x\r\n${TICKET_HEADER}: t\r\n\r\n`;

async function askForChunk(): Promise<Socket> {
  const reader = connect({ host: '127.0.0.1', port });
  await once(reader, 'connect');
  reader.write(REQUEST);
  return reader;
}

async function askOverUnixSocket(server: (typeof unixApps)[number]): Promise<Socket> {
  const reader = server.ca
    ? connectTls({ path: server.path, ca: server.ca, checkServerIdentity: () => undefined })
    : connect({ path: server.path });
  await once(reader, server.ca ? 'secureConnect' : 'connect');
  reader.write(REQUEST);
  return reader;
}

/**
 * Reads ~500 KB/s, 50 KB every 100 ms, for `ms`: a 2 MiB piece takes ~4 s, far more
 * than the idle time, while the kernel takes bytes every few hundred ms.
 */
async function readSlowly(reader: Socket, ms: number, into: Buffer[]): Promise<void> {
  reader.pause();
  const until = Date.now() + ms;
  while (Date.now() < until && !reader.destroyed) {
    const piece = reader.read(50_000) as Buffer | null;
    if (piece) into.push(piece);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const bodyOf = (received: Buffer[]) => {
  const all = Buffer.concat(received);
  return all.subarray(all.indexOf('\r\n\r\n') + 4);
};

test('a reader that takes nothing of a chunk has its connection cut after the idle time, and the file and buffers are released', {
  timeout: 20_000,
}, async () => {
  const reader = await askForChunk();
  // Reads nothing: past its own small buffer, the socket stops taking bytes from the kernel.
  reader.pause();
  await until(() => store.sending === 1);
  await until(() => store.sending === 0);
  // What the kernel still held arrives, then the end: a short body, which tells the reader to try another copy.
  let received = 0;
  reader.on('data', (piece: Buffer) => {
    received += piece.length;
  });
  reader.resume();
  await once(reader, 'close');
  assert.ok(received > 0 && received < bytes.length, `a short answer (${received} bytes)`);
  assert.ok(
    lines.some((l) => l.includes('chunk send failed mid-body') && l.includes('took nothing')),
    'the cut is logged as a warning',
  );
});

test('a reader that hangs up mid-chunk ends that send only: the file and buffers are released, the server goes on', {
  timeout: 20_000,
}, async () => {
  for (let round = 0; round < 8; round++) {
    const reader = await askForChunk();
    let received = 0;
    reader.on('data', (piece: Buffer) => {
      received += piece.length;
      // Gone after a few MiB, while the server still has most of the chunk to send.
      if (received > (round + 1) * 1024 * 1024) reader.destroy();
    });
    await once(reader, 'close');
    await until(() => store.sending === 0);
  }
  const whole = await askForChunk();
  let received = 0;
  whole.on('data', (piece: Buffer) => {
    received += piece.length;
    if (received >= bytes.length) whole.end();
  });
  await once(whole, 'close');
  assert.ok(received > bytes.length, 'the next reader gets the whole chunk');
});

for (const transport of ['plain', 'TLS']) {
  test(`a reader that reads slowly but steadily is not cut off, though it takes no 2 MiB piece within the idle time, and gets the whole chunk (${transport})`, {
    timeout: 60_000,
  }, async () => {
    const server = unixApps.find((u) => u.name === transport) as (typeof unixApps)[number];
    const reader = await askOverUnixSocket(server);
    const received: Buffer[] = [];
    let closed = false;
    reader.on('close', () => {
      closed = true;
    });
    await readSlowly(reader, 3 * SLOW_IDLE_MS, received);
    assert.equal(closed, false, 'still connected after three idle times of slow reading');
    const slowBytes = received.reduce((n, b) => n + b.length, 0);
    // Under half a 2 MiB piece per idle time: cut when only whole pieces counted.
    assert.ok(slowBytes < 3 * 1024 * 1024, `slower than a piece per idle time (${slowBytes} bytes)`);
    // Then at full speed to the end: nothing was cut, lost or reordered.
    const whole = slowBytes - bodyOf(received).length + bytes.length;
    let total = slowBytes;
    reader.on('data', (piece: Buffer) => {
      received.push(piece);
      total += piece.length;
      if (total >= whole) reader.end();
    });
    reader.resume();
    await once(reader, 'close');
    assert.ok(bodyOf(received).equals(bytes), 'the whole chunk, as stored');
    await until(() => store.sending === 0);
  });

  test(`a reader that reads slowly, then stops, is cut off within two idle times and its send released (${transport})`, {
    timeout: 60_000,
  }, async () => {
    const server = unixApps.find((u) => u.name === transport) as (typeof unixApps)[number];
    lines.length = 0;
    const reader = await askOverUnixSocket(server);
    const received: Buffer[] = [];
    await readSlowly(reader, 2 * SLOW_IDLE_MS, received);
    assert.ok(!reader.destroyed, 'not cut while reading');
    const stopped = Date.now();
    // Room for a loaded machine's pauses beyond the two idle times.
    const deadline = stopped + 2 * SLOW_IDLE_MS + 3000;
    while (store.sending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(
      store.sending,
      0,
      `cut within two idle times (${Date.now() - stopped} ms) of the reader stopping`,
    );
    reader.on('data', (piece: Buffer) => received.push(piece));
    reader.resume();
    await once(reader, 'close');
    const got = bodyOf(received).length;
    assert.ok(got > 0 && got < bytes.length, `a short answer (${got} bytes)`);
    assert.ok(
      lines.some((l) => l.includes('chunk send failed mid-body') && l.includes('took nothing')),
      'the cut is logged as a warning',
    );
  });
}

test('a reader that keeps taking bytes, but slower than the least rate for a whole chunk, is cut off once its time is up', {
  timeout: 60_000,
}, async () => {
  const server = unixApps.find((u) => u.name === 'strict') as (typeof unixApps)[number];
  lines.length = 0;
  const started = Date.now();
  const reader = await askOverUnixSocket(server);
  const received: Buffer[] = [];
  await readSlowly(reader, 3000, received);
  assert.ok(!reader.destroyed && store.sending > 0, 'not cut while within its time');
  await readSlowly(reader, 10_000, received);
  const cutAfter = Date.now() - started;
  assert.ok(reader.destroyed || store.sending === 0, 'cut while still reading');
  await until(() => store.sending === 0);
  assert.ok(cutAfter >= 4000 && cutAfter < 10_000, `cut after ${cutAfter} ms, its time being ~4.2 s`);
  assert.ok(
    lines.some((l) => l.includes('chunk send failed mid-body') && l.includes('slower than')),
    'the cut is logged as a warning',
  );
});

/**
 * Runs `use` on a connection over a Unix socket, plain or TLS: the server's end, and
 * the reader's, paused. A Unix socket's kernel buffers stay small (~200 KiB), so a few
 * MiB written to a reader that reads nothing stay mostly in libuv's write queue.
 */
async function overConnection(
  overTls: boolean,
  use: (server: Socket, reader: Socket) => Promise<void>,
): Promise<void> {
  const path = join(root, `connection-${overTls ? 'tls' : 'plain'}.sock`);
  let accept: (socket: Socket) => void = () => {};
  const accepted = new Promise<Socket>((resolve) => {
    accept = resolve;
  });
  const listener: Server = overTls ? createTlsServer(tls.serverOptions(), accept) : createServer(accept);
  listener.listen(path);
  await once(listener, 'listening');
  const reader = overTls
    ? connectTls({ path, ca: tls.serverOptions().ca, checkServerIdentity: () => undefined })
    : connect({ path });
  try {
    await once(reader, overTls ? 'secureConnect' : 'connect');
    reader.pause();
    const server = await accepted;
    try {
      await use(server, reader);
    } finally {
      server.destroy();
    }
  } finally {
    reader.destroy();
    listener.close();
  }
}

/**
 * Writes `size` bytes to a reader that reads nothing, then has it read a little at a
 * time until the count grows (or it has read it all: a count that never moves ends the
 * wait too), then read the rest.
 */
async function countWhileReaderReads(server: Socket, reader: Socket, size: number) {
  let written = false;
  server.write(Buffer.alloc(size), () => {
    written = true;
  });
  const first = bytesTaken(server) as number;
  let read = 0;
  while (!((bytesTaken(server) as number) > first) && read < size) {
    read += (reader.read() as Buffer | null)?.length ?? 0;
    await new Promise((r) => setTimeout(r, 10));
  }
  const grewMidWrite = !written && (bytesTaken(server) as number) > first;
  reader.resume();
  await until(() => written);
  return { first, grewMidWrite, last: bytesTaken(server) as number };
}

const MiB = 1024 * 1024;

test('the count of bytes taken holds what the kernel took of a connection, not what was handed to it, and grows as the reader reads', {
  timeout: 20_000,
}, async () => {
  await overConnection(false, async (server, reader) => {
    const { first, grewMidWrite, last } = await countWhileReaderReads(server, reader, 8 * MiB);
    assert.ok(first > 0 && first < 8 * MiB, `the kernel took ${first} bytes of 8 MiB at once`);
    assert.ok(grewMidWrite, 'it grew before the write completed');
    assert.equal(last, 8 * MiB, 'all of it once the write completed');
  });
});

test('the count of bytes taken grows with each write the kernel takes at once, though the write queue is as empty after as before', {
  timeout: 20_000,
}, async () => {
  await overConnection(false, async (server, reader) => {
    reader.resume();
    const queue = () => (server as unknown as { _handle: { writeQueueSize: number } })._handle.writeQueueSize;
    for (let round = 0; round < 3; round++) {
      const before = bytesTaken(server) as number;
      await new Promise<void>((resolve, reject) => {
        server.write(Buffer.alloc(64 * 1024), (err) => (err ? reject(err) : resolve()));
      });
      // The queue's size reads as it did before the write: it alone shows no progress.
      assert.equal(queue(), 0, 'nothing left queued');
      assert.equal((bytesTaken(server) as number) - before, 64 * 1024, `round ${round}: the write counted`);
    }
  });
});

test('under TLS, the count of bytes taken holds the encrypted bytes the connection underneath took, and grows as the reader reads', {
  timeout: 20_000,
}, async () => {
  await overConnection(true, async (server, reader) => {
    const { first, grewMidWrite, last } = await countWhileReaderReads(server, reader, 8 * MiB);
    assert.ok(first < 8 * MiB, `the kernel took ${first} bytes at once`);
    assert.ok(grewMidWrite, 'it grew before the write completed');
    // Records carry a header and a tag each: more bytes went than the plain text.
    assert.ok(last > 8 * MiB, `${last} bytes once the write completed`);
  });
});

test('a send held up by this server’s own disk is cut as the disk’s fault, not the reader’s', {
  timeout: 20_000,
}, async () => {
  const slowLines: string[] = [];
  const slowApp = createHttpApp(pino({ level: 'warn' }, { write: (l: string) => slowLines.push(l) }));
  // A store whose first block goes out and whose next comes back from the disk only
  // after twice the idle time.
  const diskStalls = {
    send: async (_id: string, ready: (size: number) => void, write: (piece: Buffer) => Promise<void>) => {
      ready(2 * 65536);
      await write(Buffer.alloc(65536, 1));
      await new Promise((r) => setTimeout(r, 600));
      await write(Buffer.alloc(65536, 2));
    },
  };
  getChunkRoute(slowApp, { ...routeContext(300), store: diskStalls } as unknown as FileServerContext);
  await slowApp.listen({ host: '127.0.0.1', port: 0 });
  try {
    const reader = connect({ host: '127.0.0.1', port: (slowApp.server.address() as { port: number }).port });
    await once(reader, 'connect');
    reader.write(REQUEST);
    reader.resume();
    await once(reader, 'close');
    await until(() => slowLines.some((l) => l.includes('chunk send failed mid-body')));
    assert.ok(
      slowLines.some((l) => l.includes("to read from this server's disk")),
      slowLines.join('\n'),
    );
  } finally {
    await slowApp.close();
  }
});
