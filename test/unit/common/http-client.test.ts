import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { createAgent, requestJson } from '../../../src/common/http-client.js';
import type { SedfsError } from '../../../src/protocol/errors.js';

let server: Server;
let base: string;
const agent = createAgent();

before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/html') {
      res.setHeader('content-type', 'text/html');
      res.end('<html><body>Welcome to nginx!</body></html>');
    } else if (req.url === '/error-page') {
      res.statusCode = 502;
      res.setHeader('content-type', 'text/html');
      res.end('<html>Bad Gateway</html>');
    } else {
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await agent.close();
  server.close();
});

test('a JSON answer is parsed', async () => {
  assert.deepEqual(await requestJson(agent, `${base}/json`), { ok: true });
});

test('an answer that is not JSON is a clear error naming the server, not a parser message', async () => {
  await assert.rejects(requestJson(agent, `${base}/html`), (err: SedfsError) => {
    assert.equal(err.code, 'SEDFS_ERR_BAD_ANSWER');
    assert.match(
      err.message,
      /^http:\/\/127\.0\.0\.1:\d+ answered HTTP 200 with something that is not JSON \(text\/html\); is it a SEDFS server\?$/,
    );
    return true;
  });
});

test('an error page that is not JSON keeps its status in the error', async () => {
  await assert.rejects(requestJson(agent, `${base}/error-page`), (err: SedfsError) => {
    assert.equal(err.details?.status, 502);
    assert.match(err.message, /HTTP 502/);
    return true;
  });
});

test('calls made one after another, answered or refused, share one kept connection', async () => {
  const fresh = createAgent();
  let connections = 0;
  const onConnection = () => connections++;
  server.on('connection', onConnection);
  try {
    await requestJson(fresh, `${base}/json`);
    await assert.rejects(requestJson(fresh, `${base}/error-page`));
    await requestJson(fresh, `${base}/json`);
    await requestJson(fresh, `${base}/json`);
    assert.equal(connections, 1);
  } finally {
    server.off('connection', onConnection);
    await fresh.close();
  }
});
