import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { request } from 'undici';
import { generateTlsKey } from '../../src/crypto/certificates.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';

interface Case {
  title: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  status: number;
  code: string;
}

describe('bad input gets a 4xx with a clear code, a log line, and no crash', () => {
  let cluster: TestCluster;
  let fsUrl: string;

  before(async () => {
    cluster = await TestCluster.start({ servers: 1, replicas: 1, fileServerArgs: ['--max-chunk-mib', '1'] });
    fsUrl = readFileSync(join(cluster.fileServers[0]?.data as string, 'fileserver.addr'), 'utf8').trim();
  });
  after(() => cluster?.stop());

  const json = { 'content-type': 'application/json' };
  const bearer = (t: string) => ({ ...json, authorization: `Bearer ${t}` });
  const stats = { totalBytes: 1, freeBytes: 1, usedBytes: 0, chunkCount: 0 };
  const id = 'ab'.repeat(16);

  function mainCases(token: string): Case[] {
    return [
      {
        title: 'malformed JSON',
        method: 'POST',
        path: '/v1/servers/register',
        headers: bearer(token),
        body: '{"id": ',
        status: 400,
        code: 'SEDFS_ERR_BAD_REQUEST',
      },
      {
        title: 'a wrong type',
        method: 'POST',
        path: '/v1/servers/register',
        headers: bearer(token),
        body: JSON.stringify({ id, port: '5000', stats }),
        status: 400,
        code: 'SEDFS_ERR_BAD_REQUEST',
      },
      {
        title: 'an unknown property',
        method: 'POST',
        path: '/v1/servers/register',
        headers: bearer(token),
        body: JSON.stringify({ id, port: 5000, stats, admin: true }),
        status: 400,
        code: 'SEDFS_ERR_BAD_REQUEST',
      },
      {
        title: 'an oversized body',
        method: 'POST',
        path: '/v1/servers/register',
        headers: bearer(token),
        body: JSON.stringify({ id, port: 5000, stats, url: `http://x/${'a'.repeat(20_000)}` }),
        status: 413,
        code: 'SEDFS_ERR_BODY_TOO_LARGE',
      },
      {
        title: 'a wrong join token',
        method: 'POST',
        path: '/v1/servers/enroll',
        headers: bearer('not-the-token'),
        body: JSON.stringify({ id, publicKey: generateTlsKey().publicKeyPem }),
        status: 401,
        code: 'SEDFS_ERR_JOIN_TOKEN',
      },
      {
        title: 'no join token',
        method: 'POST',
        path: '/v1/servers/enroll',
        headers: json,
        body: JSON.stringify({ id, publicKey: generateTlsKey().publicKeyPem }),
        status: 401,
        code: 'SEDFS_ERR_JOIN_TOKEN',
      },
      {
        title: 'no certificate of a file server',
        method: 'POST',
        path: `/v1/servers/${id}/heartbeat`,
        headers: bearer(token),
        body: JSON.stringify(stats),
        status: 401,
        code: 'SEDFS_ERR_CLIENT_CERT',
      },
      {
        title: 'an unknown route',
        method: 'GET',
        path: '/v1/nothing-here',
        status: 404,
        code: 'SEDFS_ERR_UNKNOWN_ROUTE',
      },
      {
        title: 'a path trick in a node id',
        method: 'GET',
        path: '/v1/nodes/..%2F..%2Fetc%2Fpasswd',
        status: 400,
        code: 'SEDFS_ERR_BAD_REQUEST',
      },
      {
        title: 'no session on a client route',
        method: 'GET',
        path: `/v1/nodes/${id}`,
        status: 401,
        code: 'SEDFS_ERR_SESSION_REQUIRED',
      },
      {
        title: 'a made-up session token',
        method: 'GET',
        path: '/v1/me',
        headers: { authorization: 'Bearer forged' },
        status: 401,
        code: 'SEDFS_ERR_SESSION_EXPIRED',
      },
      ...(
        [
          ['DELETE', `/v1/nodes/${id}`],
          ['DELETE', `/v1/nodes/${id}/lock`],
          ['DELETE', '/v1/sessions/current'],
        ] as const
      ).map(
        ([method, path]): Case => ({
          title: `a 2 KiB body on ${method} ${path}`,
          method,
          path,
          headers: bearer('any'),
          body: JSON.stringify({ pad: 'a'.repeat(2048) }),
          status: 413,
          code: 'SEDFS_ERR_BODY_TOO_LARGE',
        }),
      ),
      {
        title: 'a wrong type at signup',
        method: 'POST',
        path: '/v1/users',
        headers: json,
        body: JSON.stringify({ name: 7 }),
        status: 400,
        code: 'SEDFS_ERR_BAD_REQUEST',
      },
    ];
  }

  const chunk = 'cd'.repeat(32);
  const fileServerCases: Case[] = [
    {
      title: 'a ../ chunk id',
      method: 'GET',
      path: '/v1/chunks/..%2F..%2F..%2Fetc%2Fpasswd',
      status: 400,
      code: 'SEDFS_ERR_BAD_CHUNK_ID',
    },
    {
      title: 'a dot-dot path that resolves outside the chunk routes',
      method: 'PUT',
      path: '/v1/chunks/%2e%2e/%2e%2e/etc',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'x',
      status: 404,
      code: 'SEDFS_ERR_UNKNOWN_ROUTE',
    },
    {
      title: 'a non-hex chunk id',
      method: 'GET',
      path: `/v1/chunks/${'Z'.repeat(64)}`,
      status: 400,
      code: 'SEDFS_ERR_BAD_CHUNK_ID',
    },
    {
      title: 'an upper-case chunk id',
      method: 'GET',
      path: `/v1/chunks/${chunk.toUpperCase()}`,
      status: 400,
      code: 'SEDFS_ERR_BAD_CHUNK_ID',
    },
    {
      title: 'a wrong content type',
      method: 'PUT',
      path: `/v1/chunks/${chunk}`,
      headers: { 'content-type': 'text/plain' },
      body: 'hello',
      status: 415,
      code: 'SEDFS_ERR_UNSUPPORTED_MEDIA',
    },
    {
      title: 'an unknown route',
      method: 'POST',
      path: '/v1/format-disk',
      status: 404,
      code: 'SEDFS_ERR_UNKNOWN_ROUTE',
    },
  ];

  async function check(base: string, c: Case, log: string): Promise<void> {
    const res = await request(`${base}${c.path}`, {
      dispatcher: cluster.agent,
      method: c.method,
      ...(c.headers ? { headers: c.headers } : {}),
      ...(c.body !== undefined ? { body: c.body } : {}),
    });
    const body = (await res.body.json()) as { error: { code: string; message: string } };
    assert.equal(res.statusCode, c.status, `${c.title}: ${JSON.stringify(body)}`);
    assert.equal(body.error.code, c.code, c.title);
    assert.ok(body.error.message.length > 0, c.title);
    await waitFor(`a log line for ${c.title}`, () => readFileSync(log, 'utf8').includes(c.code));
  }

  async function alive(base: string): Promise<void> {
    const res = await request(`${base}/v1/health`, { dispatcher: cluster.agent });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
  }

  test('main answers each bad request with its code and logs it, and keeps serving', async () => {
    const log = join(cluster.mainData, 'main.log');
    for (const c of mainCases(cluster.joinToken)) await check(cluster.mainUrl, c, log);
    await alive(cluster.mainUrl);
    assert.equal(cluster.main.proc.exitCode, null);
  });

  test('a file server answers each bad request with its code and logs it, and keeps serving', async () => {
    const log = join(cluster.fileServers[0]?.data as string, 'fileserver.log');
    for (const c of fileServerCases) await check(fsUrl, c, log);
    await alive(fsUrl);
    assert.equal(cluster.fileServers[0]?.process.proc.exitCode, null);
  });

  test('a chunk larger than the server accepts is refused before it is read', async () => {
    const client = await cluster.client();
    const upload = await client.beginUpload(1);
    const big = Buffer.alloc(1024 * 1024 + 1, 1);
    const bigId = createHash('sha256').update(big).digest('hex');
    const { placements } = await client.place(upload.uploadId, [{ id: bigId, size: big.length }]);
    const res = await request(`${fsUrl}/v1/chunks/${bigId}`, {
      dispatcher: cluster.agent,
      method: 'PUT',
      headers: {
        'content-type': 'application/octet-stream',
        'x-sedfs-ticket': placements[0]?.ticket as string,
      },
      body: big,
    });
    const body = (await res.body.json()) as { error: { code: string } };
    assert.equal(res.statusCode, 413);
    assert.equal(body.error.code, 'SEDFS_ERR_BODY_TOO_LARGE');
  });

  test('a route that takes big bodies turns away a stranger before reading the body', async () => {
    // Each request promises a body of 200 MiB and sends 1 KiB of it: the answer must come
    // from the headers alone. Were the body read first, there would be no answer at all.
    const big = 200 * 1024 * 1024;
    for (const [method, path, code, length] of [
      ['POST', `/v1/nodes/${id}/unshare`, 'SEDFS_ERR_SESSION_REQUIRED', big],
      ['POST', `/v1/nodes/${id}/rekey`, 'SEDFS_ERR_SESSION_REQUIRED', big],
      ['POST', `/v1/uploads/${id}/commit`, 'SEDFS_ERR_SESSION_REQUIRED', big],
      ['POST', `/v1/uploads/${id}/commit-files`, 'SEDFS_ERR_SESSION_REQUIRED', big],
      ['POST', `/v1/servers/${id}/heartbeat`, 'SEDFS_ERR_CLIENT_CERT', big],
      // Streamed by file servers; as JSON, anyone's body up to main's 1 MiB was read first.
      ['PUT', `/v1/servers/${id}/inventory`, 'SEDFS_ERR_CLIENT_CERT', 1024 * 1024],
    ] as const) {
      const answer = await firstAnswer(
        cluster.mainUrl,
        cluster.ca,
        path,
        length,
        Buffer.alloc(1024, 0x7b),
        method,
      );
      assert.match(answer, /^HTTP\/1\.1 401 /, path);
      assert.ok(answer.includes(code), `${path}: ${answer}`);
    }
    await alive(cluster.mainUrl);
  });

  test('the join token never appears in main’s log, even from requests that carried it', () => {
    const log = readFileSync(join(cluster.mainData, 'main.log'), 'utf8');
    assert.ok(!log.includes(cluster.joinToken));
    assert.ok(log.includes('request refused'));
  });
});

/**
 * Sends a request's headers and the first part of a body of `length` bytes, and returns
 * what the server answers before the rest is sent ('' if it says nothing in 10 s).
 */
function firstAnswer(
  base: string,
  ca: string | undefined,
  path: string,
  length: number,
  part: Buffer,
  method = 'POST',
): Promise<string> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const head = `${method} ${path} HTTP/1.1\r\nHost: ${url.host}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`;
    const socket =
      url.protocol === 'https:'
        ? tlsConnect({ host: url.hostname, port: Number(url.port), ...(ca ? { ca } : {}) })
        : netConnect(Number(url.port), url.hostname);
    socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      socket.write(head);
      socket.write(part);
    });
    let answer = '';
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(done, 10_000);
    socket.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      if (answer.includes('\r\n\r\n') && /"code"/.test(answer)) done();
    });
    socket.on('error', done);
    socket.on('close', done);
  });
}
