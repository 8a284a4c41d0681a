import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createTcpServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { MainCalls } from '../../../src/client/main-calls.js';
import type { SedfsError } from '../../../src/protocol/errors.js';

/** A stand-in for main on 127.0.0.1: answers with `answer`, counting the connections it is sent on. */
async function fakeMain(answer: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<{
  server: Server;
  url: string;
  connections: Socket[];
}> {
  const connections: Socket[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => answer(req, res, body));
  });
  server.on('connection', (socket) => connections.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections };
}

const json = (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(value));
};

test('calls to main one after another go on one kept connection, with the token and the JSON body main is sent', async () => {
  const seen: string[] = [];
  const main = await fakeMain((req, res, body) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? '-'} ${body || '-'}`);
    json(res, 200, { ok: seen.length });
  });
  const calls = new MainCalls(main.url);
  try {
    assert.deepEqual(await calls.call('GET', '/v1/a'), { ok: 1 });
    assert.deepEqual(await calls.call('POST', '/v1/b', { x: 1 }, { token: 't0k' }), { ok: 2 });
    assert.deepEqual(await calls.call('GET', '/v1/c'), { ok: 3 });
    assert.deepEqual(seen, ['GET /v1/a - -', 'POST /v1/b Bearer t0k {"x":1}', 'GET /v1/c - -']);
    assert.equal(main.connections.length, 1);
  } finally {
    calls.close();
    main.server.close();
  }
});

test("main's error answer comes back as a SedfsError with its code, message and the seconds it asks to wait; an answer that is not JSON says so", async () => {
  const main = await fakeMain((req, res) => {
    if (req.url === '/busy')
      json(
        res,
        503,
        { error: { code: 'SEDFS_ERR_BUSY', message: 'try again shortly' } },
        { 'retry-after': '3' },
      );
    else if (req.url === '/page') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>a proxy</html>');
    } else {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>bad gateway</html>');
    }
  });
  const calls = new MainCalls(main.url);
  try {
    await assert.rejects(calls.call('GET', '/busy'), (err: SedfsError) => {
      assert.equal(err.code, 'SEDFS_ERR_BUSY');
      assert.equal(err.message, 'try again shortly');
      assert.equal(err.details?.retryAfterS, 3);
      assert.equal(err.details?.status, 503);
      return true;
    });
    await assert.rejects(calls.call('GET', '/page'), {
      code: 'SEDFS_ERR_BAD_ANSWER',
      message: `${main.url} answered HTTP 200 with something that is not JSON (text/html); is it a SEDFS server?`,
    });
    await assert.rejects(calls.call('GET', '/gateway'), {
      code: 'SEDFS_ERR_INTERNAL',
      message: `unexpected HTTP 502 from ${main.url}`,
    });
  } finally {
    calls.close();
    main.server.close();
  }
});

test('a kept connection main dropped meanwhile costs a call nothing: it is sent again on a new one', async () => {
  // Raw TCP, to drop the kept connection as the next request arrives on it and before
  // anything reads it: as main's idle timeout or a restart does, unseen by the client.
  let connections = 0;
  let answered = 0;
  const main = createTcpServer((socket) => {
    const first = connections++ === 0;
    let requests = 0;
    socket.on('data', () => {
      if (first && requests++ > 0) {
        socket.destroy();
        return;
      }
      const body = JSON.stringify({ answered: ++answered });
      socket.write(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n${body}`,
      );
    });
  });
  await new Promise<void>((resolve) => main.listen(0, '127.0.0.1', resolve));
  const calls = new MainCalls(`http://127.0.0.1:${(main.address() as AddressInfo).port}`);
  try {
    assert.deepEqual(await calls.call('GET', '/v1/one'), { answered: 1 });
    assert.deepEqual(await calls.call('GET', '/v1/two'), { answered: 2 });
    assert.equal(connections, 2);
  } finally {
    calls.close();
    main.close();
  }
});

test('main silent past the wait is unreachable, saying so; a wait of 0 waits as long as it takes', async () => {
  const held: ServerResponse[] = [];
  const main = await fakeMain((req, res) => {
    if (req.url === '/slow') setTimeout(() => json(res, 200, { done: true }), 300);
    else held.push(res);
  });
  const calls = new MainCalls(main.url);
  try {
    await assert.rejects(calls.call('GET', '/silent', undefined, { silenceMs: 100 }), (err: SedfsError) => {
      assert.equal(err.code, 'SEDFS_ERR_UNREACHABLE');
      assert.equal(err.message, `cannot reach ${main.url} (ETIMEDOUT)`);
      return true;
    });
    assert.deepEqual(await calls.call('GET', '/slow', undefined, { silenceMs: 0 }), { done: true });
  } finally {
    calls.close();
    for (const r of held) r.destroy();
    main.server.close();
  }
});

test('main not listening is unreachable', async () => {
  const main = await fakeMain(() => undefined);
  const { url } = main;
  await new Promise((resolve) => main.server.close(resolve));
  const calls = new MainCalls(url);
  try {
    await assert.rejects(calls.call('GET', '/v1/servers'), {
      code: 'SEDFS_ERR_UNREACHABLE',
      message: `cannot reach ${url} (ECONNREFUSED)`,
    });
  } finally {
    calls.close();
  }
});
