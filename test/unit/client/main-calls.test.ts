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

test('a GET whose kept connection main dropped meanwhile costs nothing: it is sent again on a new one', async () => {
  // Main drops the kept connection as the next request arrives on it, before reading it:
  // as its idle timeout or a restart does, unseen by the client.
  const main = await rawMain((n, connection) =>
    connection === 0 && n === 2 ? undefined : JSON.stringify({ n }),
  );
  const calls = new MainCalls(main.url);
  try {
    assert.deepEqual(await calls.call('GET', '/v1/one'), { n: 1 });
    assert.deepEqual(await calls.call('GET', '/v1/two'), { n: 3 });
    assert.equal(main.connections(), 2);
  } finally {
    calls.close();
    main.server.close();
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

/** A raw TCP stand-in: answers each request on a connection with `answer(n)` (n counts requests everywhere), or drops the connection if it returns undefined. */
async function rawMain(answer: (n: number, connection: number) => string | undefined) {
  let requests = 0;
  let connections = 0;
  const server = createTcpServer((socket) => {
    const connection = connections++;
    socket.on('data', () => {
      const body = answer(++requests, connection);
      if (body === undefined) socket.destroy();
      else
        socket.write(
          `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n${body}`,
        );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    connections: () => connections,
  };
}

test('a POST whose kept connection main dropped is not sent again: main may have done it already, and is not asked twice', async () => {
  // Main takes the POST (counted) and drops the connection without answering.
  const main = await rawMain((n) => (n === 2 ? undefined : JSON.stringify({ n })));
  const calls = new MainCalls(main.url);
  try {
    await calls.call('GET', '/v1/one');
    await assert.rejects(calls.call('POST', '/v1/commit', { x: 1 }), { code: 'SEDFS_ERR_UNREACHABLE' });
    assert.equal(main.requests(), 2);
    assert.equal(main.connections(), 1);
  } finally {
    calls.close();
    main.server.close();
  }
});

test('calls to main under way when it is closed fail, and are not sent again; later calls fail too, unsent', async () => {
  const held: ServerResponse[] = [];
  const asked: string[] = [];
  const main = await fakeMain((req, res) => {
    asked.push(req.url as string);
    if (req.url === '/v1/first') json(res, 200, { ok: true });
    else held.push(res);
  });
  const calls = new MainCalls(main.url);
  try {
    await calls.call('GET', '/v1/first');
    // On the kept connection: the one a dropped connection's GET would be sent again after.
    const pending = calls.call('GET', '/v1/slow');
    while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    calls.close();
    await assert.rejects(pending, { code: 'SEDFS_ERR_UNREACHABLE' });
    await assert.rejects(calls.call('GET', '/v1/later'), { code: 'SEDFS_ERR_UNREACHABLE' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(asked, ['/v1/first', '/v1/slow']);
  } finally {
    for (const r of held) r.destroy();
    main.server.close();
  }
});

test('many calls at once share at most 64 connections to main, the rest waiting their turn', async () => {
  const main = await fakeMain((_req, res) => setTimeout(() => json(res, 200, { ok: true }), 50));
  const calls = new MainCalls(main.url);
  try {
    const answers = await Promise.all(Array.from({ length: 150 }, (_, i) => calls.call('GET', `/v1/n/${i}`)));
    assert.equal(answers.length, 150);
    assert.ok(main.connections.length <= 64, `${main.connections.length} connections`);
  } finally {
    calls.close();
    main.server.close();
  }
});

test('a connection whose TLS handshake main never finishes fails at the connecting wait, whatever the call would wait for an answer', async () => {
  // Takes the TCP connection and says nothing: no TLS handshake ever ends.
  const silent = createTcpServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const calls = new MainCalls(url, undefined, 200);
  try {
    await assert.rejects(calls.call('GET', '/v1/servers', undefined, { silenceMs: 0 }), {
      code: 'SEDFS_ERR_UNREACHABLE',
      message: `cannot reach ${url} (ETIMEDOUT)`,
    });
  } finally {
    calls.close();
    silent.close();
  }
});
