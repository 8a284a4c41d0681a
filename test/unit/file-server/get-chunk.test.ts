import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { createHttpApp } from '../../../src/common/http-server.js';
import { ChunkStore } from '../../../src/file-server/chunk-store.js';
import type { FileServerContext } from '../../../src/file-server/context.js';
import { getChunkRoute } from '../../../src/file-server/routes/get-chunk.js';
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

before(async () => {
  await store.init();
  mkdirSync(dirname(store.pathOf(id)), { recursive: true });
  writeFileSync(store.pathOf(id), bytes);
  const ctx = {
    serverId: 'fs-test',
    store,
    log,
    now: Date.now,
    keys: () => ({ receiptKey: '', verifyTicket: () => ({}) }),
    sendIdleMs: 300,
  } as unknown as FileServerContext;
  getChunkRoute(app, ctx);
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
});
// The server closes whatever is left (forceCloseConnections), so a failed test cannot hang the run.
after(async () => {
  await app.close();
  rmSync(root, { recursive: true, force: true });
});

const until = async (what: () => boolean) => {
  while (!what()) await new Promise((r) => setTimeout(r, 10));
};

async function askForChunk(): Promise<Socket> {
  const reader = connect({ host: '127.0.0.1', port });
  await once(reader, 'connect');
  reader.write(`GET /v1/chunks/${id} HTTP/1.1\r\nhost: x\r\n${TICKET_HEADER}: t\r\n\r\n`);
  return reader;
}

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
