import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { pump } from '../../../src/common/pump.js';

const pieces = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from([i]));

test('pump hands over every piece in order and resolves at the end', async () => {
  const seen: number[] = [];
  await pump(Readable.from(pieces(50)), (p) => {
    seen.push(p[0] as number);
    return undefined;
  });
  assert.deepEqual(
    seen,
    Array.from({ length: 50 }, (_, i) => i),
  );
});

test('pump waits for a returned promise before the next piece and before resolving', async () => {
  const log: string[] = [];
  await pump(Readable.from(pieces(4)), (p) => {
    log.push(`start ${p[0]}`);
    if (p[0] !== 1 && p[0] !== 3) return undefined;
    return new Promise<void>((resolve) =>
      setTimeout(() => {
        log.push(`done ${p[0]}`);
        resolve();
      }, 20),
    );
  });
  assert.deepEqual(log, ['start 0', 'start 1', 'done 1', 'start 2', 'start 3', 'done 3']);
});

test("pump rejects with the handler's error, thrown or rejected, and stops handing over", async () => {
  let calls = 0;
  await assert.rejects(
    pump(Readable.from(pieces(10)), () => {
      calls += 1;
      if (calls === 3) throw new Error('too large');
      return undefined;
    }),
    /too large/,
  );
  assert.equal(calls, 3);
  await assert.rejects(
    pump(Readable.from(pieces(10)), () => Promise.reject(new Error('disk full'))),
    /disk full/,
  );
});

test("pump rejects with the source's error", async () => {
  const src = new Readable({ read() {} });
  const done = pump(src, () => undefined);
  src.push(Buffer.from('a'));
  src.destroy(new Error('connection reset'));
  await assert.rejects(done, /connection reset/);
});

// A source that is over before pump is called never emits its end again: without these
// checks pump would wait forever (bounded here so that shows as a failure, not a hang).
test('pump rejects at once on a source destroyed before it was called, with its error or as cut off', {
  timeout: 5000,
}, async () => {
  const errored = new Readable({ read() {} });
  errored.on('error', () => undefined); // heard by its owner before pump
  errored.destroy(new Error('connection reset'));
  await new Promise((closed) => errored.once('close', closed));
  await assert.rejects(
    pump(errored, () => undefined),
    /connection reset/,
  );

  const closed = new Readable({ read() {} });
  closed.push(Buffer.from('half'));
  closed.destroy();
  await once(closed, 'close');
  await assert.rejects(
    pump(closed, () => undefined),
    { code: 'SEDFS_ERR_BODY_INCOMPLETE' },
  );
});

test('pump rejects on a request whose client hung up before pump was called', { timeout: 5000 }, async () => {
  let pumped: Promise<void> | undefined;
  const server = createServer((req) => {
    // As a route does while it opens the file: the body is not read yet.
    req.once('close', () => {
      pumped = pump(req, () => undefined);
      server.emit('pumped');
    });
  });
  server.listen(0, '127.0.0.1');
  // Should pump hang, the test fails on its timeout and the server must not keep the run alive.
  server.unref();
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    const client = request({ port, method: 'PUT', headers: { 'content-length': '1000' } });
    client.on('error', () => undefined);
    client.write(Buffer.alloc(10));
    await once(server, 'request');
    client.destroy();
    await once(server, 'pumped');
    await assert.rejects(pumped as Promise<void>);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
