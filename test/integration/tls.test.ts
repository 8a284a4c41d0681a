import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Agent, request } from 'undici';
import { ClusterClient } from '../../src/client/cluster-client.js';
import { createAgent } from '../../src/common/http-client.js';
import { TlsIdentity } from '../../src/common/tls.js';
import { certificateFacts, generateTlsKey } from '../../src/crypto/certificates.js';
import { createCa, issueCertificate } from '../../src/crypto/cluster-ca.js';
import type { SedfsError } from '../../src/protocol/errors.js';
import type { CheckResponse } from '../../src/protocol/main-api.js';
import type { ContentResponse } from '../../src/protocol/namespace-api.js';
import { runSedfs, TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser, type TestUser } from '../helpers/users.js';

const CHUNK = 64 * 1024;

/** Everything a server sends back to a plain-HTTP request, until it closes the connection. */
function plainHttpAnswer(url: string): Promise<Buffer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), hostname, () =>
      socket.write(`GET /v1/ca HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`),
    );
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.setTimeout(5000, () => socket.destroy());
  });
}

/** A connection pool showing a certificate for `commonName` from a CA that is not the cluster's. */
async function foreignAgent(cluster: TestCluster, commonName: string): Promise<Agent> {
  const other = await createCa();
  const key = generateTlsKey();
  const certPem = await issueCertificate(other, {
    publicKeyPem: key.publicKeyPem,
    commonName,
    hosts: ['127.0.0.1'],
    lifetimeMs: 3600_000,
  });
  return createAgent(new TlsIdentity(cluster.ca as string, { certPem, keyPem: key.keyPem }));
}

describe('TLS on every connection, with the cluster CA main makes', () => {
  let cluster: TestCluster;
  let user: TestUser;
  let work: string;
  const data = seededBytes(61, 6 * CHUNK);

  before(async () => {
    cluster = await TestCluster.start({ servers: 4, replicas: 3, mainArgs: ['--lost-after', '0'] });
    user = await newUser(cluster, 'tls');
    await user.fs.put([data], '/t.bin', { chunkBytes: CHUNK });
    work = mkdtempSync(join(tmpdir(), 'sedfs-tls-'));
  });
  after(async () => {
    await user?.client.close();
    await cluster?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('main and file servers speak https only: a plain-HTTP request gets no data', async () => {
    assert.match(cluster.mainUrl, /^https:\/\//);
    const urls = [cluster.mainUrl, ...(await cluster.servers()).map((s) => s.url)];
    assert.equal(urls.length, 5);
    for (const url of urls) {
      assert.match(url, /^https:\/\//);
      const answer = await plainHttpAnswer(url);
      assert.doesNotMatch(answer.toString('latin1'), /HTTP\/1\.1|BEGIN CERTIFICATE|"ca"/, url);
    }
    // main's key material is its own; the join string is for the operator only.
    for (const f of ['ca-key.pem', 'main-key.pem'])
      assert.equal(readFileSync(join(cluster.mainData, 'tls', f)).length > 0, true);
    assert.match(
      readFileSync(join(cluster.mainData, 'join'), 'utf8'),
      /^sedfs:\/\/[\w-]+@127\.0\.0\.1:\d+#[0-9a-f]{64}\n$/,
    );
  });

  test('a client holding a different CA fingerprint refuses to talk, with a clear message', async () => {
    const wrong = '0'.repeat(64);
    const res = await runSedfs(['signup', 'mallory', '--main', cluster.mainUrl, '--ca-fingerprint', wrong], {
      SEDFS_HOME: join(work, 'p1'),
      SEDFS_PASSPHRASE: 'pw',
    });
    assert.equal(res.code, 1);
    assert.match(res.stderr, new RegExp(`has CA fingerprint [0-9a-f]{64}, not the ${wrong} you gave`));
    assert.equal(existsSync(join(work, 'p1', 'session.json')), false);
    // A client that trusts another CA altogether refuses main's certificate.
    const elsewhere = new ClusterClient(cluster.mainUrl, { ca: (await createCa()).certPem });
    await assert.rejects(elsewhere.servers(), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'SEDFS_ERR_UNTRUSTED_SERVER');
      assert.match(err.message, /certificate the cluster's CA did not issue/);
      return true;
    });
    await elsewhere.close();
  });

  test('without a client certificate, or with one from another CA, no process can register or order copies', async () => {
    const id = cluster.fileServers[0]?.id as string;
    const register = (agent: Agent) =>
      request(`${cluster.mainUrl}/v1/servers/register`, {
        dispatcher: agent,
        method: 'POST',
        headers: { authorization: `Bearer ${cluster.joinToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          id,
          port: 1,
          stats: { totalBytes: 1, freeBytes: 1, usedBytes: 0, chunkCount: 0 },
        }),
      });
    const target = (await cluster.servers())[1]?.url as string;
    const replicate = (agent: Agent) =>
      request(`${target}/v1/chunks/${'a'.repeat(64)}/replicate`, {
        dispatcher: agent,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sourceTicket: 'x', size: 1 }),
      });
    const foreign = await foreignAgent(cluster, id);
    const foreignMain = await foreignAgent(cluster, 'main');
    const asServer = cluster.serverAgent(0);
    try {
      for (const [what, res] of [
        ['register, no certificate', await register(cluster.agent)],
        ['register, certificate from another CA', await register(foreign)],
        ['copy order, no certificate', await replicate(cluster.agent)],
        ['copy order, "main" from another CA', await replicate(foreignMain)],
        ['copy order from a file server, not main', await replicate(asServer)],
      ] as const) {
        const body = (await res.body.json()) as { error: { code: string } };
        assert.equal(res.statusCode, 401, what);
        assert.equal(body.error.code, 'SEDFS_ERR_CLIENT_CERT', what);
      }
    } finally {
      await Promise.all([foreign.close(), foreignMain.close(), asServer.close()]);
    }
    const log = readFileSync(join(cluster.mainData, 'main.log'), 'utf8');
    assert.match(log, /SEDFS_ERR_CLIENT_CERT/);
  });

  test("a file server's certificate cannot stand in for main: a client sent to it refuses before sending anything", async () => {
    // The impostor holds a certificate the cluster CA really issued, for main's very
    // host (127.0.0.1): only the name on it tells it from main.
    const tlsDir = join(cluster.fileServers[0]?.data as string, 'tls');
    const asked: string[] = [];
    const impostor = createHttpsServer(
      { cert: readFileSync(join(tlsDir, 'cert.pem')), key: readFileSync(join(tlsDir, 'key.pem')) },
      (req, res) => {
        asked.push(req.url ?? '');
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ servers: [] }));
      },
    );
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const port = (impostor.address() as AddressInfo).port;
    const client = new ClusterClient(`https://127.0.0.1:${port}`, { ca: cluster.ca as string });
    try {
      await assert.rejects(client.servers(), (err: SedfsError) => {
        assert.equal(err.code, 'SEDFS_ERR_UNTRUSTED_SERVER');
        assert.match(err.message, /not the server you trust/);
        return true;
      });
      assert.deepEqual(asked, [], 'no request reached the impostor');
      // The same client code talks to the real main as before.
      assert.ok((await user.client.servers()).servers.length > 0);
    } finally {
      await client.close();
      impostor.close();
    }
  });

  test('a removed file server can no longer connect, and its chunks are re-replicated', async () => {
    const node = await user.fs.resolve('/t.bin');
    const content = await user.client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
    const chunkIds = content.manifest.chunks.map((c) => c.id);
    // Remove the server that holds the most of this file.
    const holds = (i: number) => chunkIds.filter((c) => existsSync(cluster.chunkPath(i, c))).length;
    const victim = [0, 1, 2, 3].sort((a, b) => holds(b) - holds(a))[0] as number;
    assert.ok(holds(victim) > 0);
    const victimId = cluster.fileServers[victim]?.id as string;
    const admin = await cluster.client();
    await admin.call('POST', `/v1/servers/${victimId}/remove`, {});

    const others = [0, 1, 2, 3].filter((i) => i !== victim);
    await waitFor(
      'R=3 on the other servers',
      () => chunkIds.every((c) => others.filter((i) => existsSync(cluster.chunkPath(i, c))).length === 3),
      20_000,
    );
    const check = await admin.call<CheckResponse>('GET', '/v1/check');
    assert.equal(check.servers.find((s) => s.id === victimId)?.state, 'removed');
    // Main refuses it, and so does every other file server once their heartbeats told them.
    const asVictim = cluster.serverAgent(victim);
    try {
      const peer = (await cluster.servers()).find(
        (s) => s.id === cluster.fileServers[others[0] as number]?.id,
      );
      await waitFor('the other servers to refuse it', async () => {
        const res = await request(`${peer?.url}/v1/health`, { dispatcher: asVictim });
        const body = (await res.body.json()) as { error?: { code: string } };
        return res.statusCode === 403 && body.error?.code === 'SEDFS_ERR_SERVER_REMOVED';
      });
      const beat = await request(`${cluster.mainUrl}/v1/servers/${victimId}/heartbeat`, {
        dispatcher: asVictim,
        method: 'POST',
        headers: { authorization: `Bearer ${cluster.joinToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ totalBytes: 1, freeBytes: 1, usedBytes: 0, chunkCount: 0 }),
      });
      assert.equal(beat.statusCode, 403);
      await beat.body.dump();
    } finally {
      await asVictim.close();
    }
    // Restarted, it cannot get a new certificate either: it stops with a clear error.
    await cluster.killFileServer(victim);
    const restarted = await runSedfs(
      ['fileserver', '--port', '0', '--data', cluster.fileServers[victim]?.data as string],
      {
        SEDFS_JOIN: readFileSync(join(cluster.mainData, 'join'), 'utf8').trim(),
      },
    );
    assert.notEqual(restarted.code, 0);
    assert.match(restarted.stderr, /removed from the cluster/);
    const out = collector();
    await user.fs.get('/t.bin', out.sink);
    assert.deepEqual(out.bytes(), data);
  });
});

describe('certificates renew themselves before they expire', () => {
  let cluster: TestCluster;
  let user: TestUser;

  before(async () => {
    // 20 s, not less: a certificate is backdated 60 s for clock skew, and renewal is checked
    // every tenth of the whole 80 s (8 s), so it comes 12 s before expiry. With 6 s
    // certificates it came ~0.6 s after, every time, and a handshake then failed.
    cluster = await TestCluster.start({ servers: 2, replicas: 2, mainArgs: ['--cert-lifetime', '20'] });
    user = await newUser(cluster, 'renewer');
  });
  after(async () => {
    await user?.client.close();
    await cluster?.stop();
  });

  test("main's and every file server's certificates are replaced before expiry, and the cluster keeps working", async () => {
    const facts = (path: string) => certificateFacts(readFileSync(path, 'utf8'));
    const mainCert = join(cluster.mainData, 'tls', 'main.pem');
    const certs = [mainCert, ...cluster.fileServers.map((f) => join(f.data, 'tls', 'cert.pem'))];
    const first = certs.map(facts);
    // Watched throughout: a certificate still in place past its expiry was renewed too late.
    const late: string[] = [];
    const watch = setInterval(() => {
      for (const p of certs) {
        const f = facts(p);
        if (Date.now() > f.notAfter)
          late.push(`${p} (serial ${f.serial}) ${Date.now() - f.notAfter} ms past expiry`);
      }
    }, 100);
    try {
      await waitFor(
        'every certificate renewed',
        () => certs.every((p, i) => facts(p).serial !== first[i]?.serial),
        30_000,
      );
      // Past the first certificates' expiry, new connections still work end to end.
      const expired = Math.max(...first.map((f) => f.notAfter));
      await new Promise((r) => setTimeout(r, Math.max(0, expired - Date.now()) + 1000));
      const fresh = await newUser(cluster, 'later');
      try {
        const data = seededBytes(62, 3 * CHUNK);
        await fresh.fs.put([data], '/after-renewal.bin', { chunkBytes: CHUNK });
        const out = collector();
        await fresh.fs.get('/after-renewal.bin', out.sink);
        assert.deepEqual(out.bytes(), data);
      } finally {
        await fresh.client.close();
      }
    } finally {
      clearInterval(watch);
    }
    assert.deepEqual(late, [], 'no certificate outlived its expiry before its renewal');
    assert.match(
      readFileSync(join(cluster.fileServers[0]?.data as string, 'fileserver.log'), 'utf8'),
      /certificate renewed/,
    );
  });
});
