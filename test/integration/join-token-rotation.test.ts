import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type Agent, request } from 'undici';
import { createAgent } from '../../src/common/http-client.js';
import { TlsIdentity } from '../../src/common/tls.js';
import { certificateFacts, generateTlsKey } from '../../src/crypto/certificates.js';
import { issueCertificate } from '../../src/crypto/cluster-ca.js';
import { parseJoinString } from '../../src/protocol/join-string.js';
import { runSedfs, spawnSedfs, TestCluster, waitFor } from '../helpers/cluster.js';

describe('an admin rotates the join token', () => {
  let cluster: TestCluster;
  let work: string;
  let oldJoin: string;
  let newJoin: string;
  const as = (profile: string) => ({
    SEDFS_HOME: join(work, profile),
    SEDFS_MAIN: cluster.mainUrl,
    SEDFS_PASSPHRASE: 'correct horse',
  });
  const sedfs = (profile: string, ...args: string[]) => runSedfs(args, as(profile));
  const joinFile = () => readFileSync(join(cluster.mainData, 'join'), 'utf8').trim();

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'sedfs-rotate-'));
    cluster = await TestCluster.start({
      servers: 2,
      replicas: 2,
      // The first account is the cluster's admin.
      whenMainIsUp: async (c) => {
        cluster = c;
        for (const user of ['admin', 'bob']) {
          const res = await sedfs(user, 'signup', user);
          assert.equal(res.code, 0, res.stderr);
        }
      },
    });
    const put = await sedfs('admin', 'write', '/note.txt', 'still here');
    assert.equal(put.code, 0, put.stderr);
    oldJoin = joinFile();
  });
  after(async () => {
    await cluster?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('only an admin may rotate it', async () => {
    const res = await sedfs('bob', 'admin', 'rotate-join-token');
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /only an admin may do that/);
    assert.equal(joinFile(), oldJoin);
  });

  test('rotating prints a new join string, which main saves with the token (0600) and keeps across a restart', async () => {
    const res = await sedfs('admin', 'admin', 'rotate-join-token', '--json');
    assert.equal(res.code, 0, res.stderr);
    newJoin = (JSON.parse(res.stdout) as { join: string }).join;
    const [before, after] = [parseJoinString(oldJoin), parseJoinString(newJoin)];
    assert.notEqual(after.joinToken, before.joinToken);
    assert.equal(after.mainUrl, before.mainUrl);
    assert.equal(after.caFingerprint, before.caFingerprint);
    assert.equal(joinFile(), newJoin);
    const tokenFile = join(cluster.mainData, 'join-token');
    assert.equal(readFileSync(tokenFile, 'utf8').trim(), after.joinToken);
    if (process.platform !== 'win32') assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    const log = readFileSync(join(cluster.mainData, 'main.log'), 'utf8');
    assert.match(log, /join token rotated/);
    assert.ok(!log.includes(after.joinToken) && !log.includes(before.joinToken), 'no token in the log');

    await cluster.stopMain();
    await cluster.startMain();
    assert.equal(cluster.joinToken, after.joinToken);
    assert.equal(joinFile(), newJoin);
    await cluster.waitUp(2);
  });

  test('the old token gets a new file server no certificate: it stops with a clear error', async () => {
    const intruder = spawnSedfs(['fileserver', '--port', '0', '--data', join(work, 'intruder')], {
      SEDFS_JOIN: oldJoin,
    });
    const code = await Promise.race([intruder.exited, delay(20_000, 'still running')]);
    intruder.proc.kill('SIGKILL');
    assert.equal(code, 1, intruder.output());
    assert.match(intruder.output(), /join token/);
    assert.equal((await cluster.servers()).length, 2);
  });

  test('a file server enrolled before comes back with the old token in its configuration, renewed by its certificate', async () => {
    const certPath = join(cluster.fileServers[0]?.data as string, 'tls', 'cert.pem');
    const serialBefore = certificateFacts(readFileSync(certPath, 'utf8')).serial;
    await cluster.killFileServer(0, 'SIGTERM');
    await cluster.startFileServer(0, { SEDFS_JOIN: oldJoin });
    const log = join(cluster.fileServers[0]?.data as string, 'fileserver.log');
    await waitFor(
      'server 0 to join again',
      () => readFileSync(log, 'utf8').split('joined the cluster').length === 3,
    );
    const serialAfter = certificateFacts(readFileSync(certPath, 'utf8')).serial;
    assert.notEqual(serialAfter, serialBefore, 'it got a new certificate at start');
    await cluster.killFileServer(1);
    await waitFor('server 1 down', async () => (await cluster.servers()).some((s) => s.state === 'down'));
    const cat = await sedfs('admin', 'cat', '/note.txt');
    assert.equal(cat.code, 0, cat.stderr);
    assert.equal(cat.stdout, 'still here\n');
    await cluster.startFileServer(1);
    await cluster.waitUp(2);
  });

  test("the join token cannot take over a server's id: another key is refused, and one server's certificate enrols no other id", async () => {
    const enrol = (agent: Agent, id: string, token?: string) =>
      request(`${cluster.mainUrl}/v1/servers/enroll`, {
        dispatcher: agent,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ id, publicKey: generateTlsKey().publicKeyPem }),
      });
    const [id0, id1] = [cluster.fileServers[0]?.id as string, cluster.fileServers[1]?.id as string];
    const asServer0 = cluster.serverAgent(0);
    try {
      for (const [what, res, status, code] of [
        [
          'token, existing id, new key',
          await enrol(cluster.agent, id0, cluster.joinToken),
          409,
          'SEDFS_ERR_SERVER_KEY_MISMATCH',
        ],
        [
          "server 0's certificate enrolling server 1",
          await enrol(asServer0, id1),
          401,
          'SEDFS_ERR_JOIN_TOKEN',
        ],
      ] as const) {
        const body = (await res.body.json()) as { error: { code: string } };
        assert.equal(res.statusCode, status, what);
        assert.equal(body.error.code, code, what);
      }
    } finally {
      await asServer0.close();
    }
  });

  test('a certificate naming a server but certifying another key (as the CA issued before ids were bound) is refused', async () => {
    const id0 = cluster.fileServers[0]?.id as string;
    const ca = {
      certPem: readFileSync(join(cluster.mainData, 'tls', 'ca.pem'), 'utf8'),
      keyPem: readFileSync(join(cluster.mainData, 'tls', 'ca-key.pem'), 'utf8'),
    };
    const key = generateTlsKey();
    const certPem = await issueCertificate(ca, {
      publicKeyPem: key.publicKeyPem,
      commonName: id0,
      hosts: ['127.0.0.1'],
      lifetimeMs: 3600_000,
    });
    const impostor = createAgent(new TlsIdentity(ca.certPem, { certPem, keyPem: key.keyPem }));
    try {
      const beat = await request(`${cluster.mainUrl}/v1/servers/${id0}/heartbeat`, {
        dispatcher: impostor,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ totalBytes: 1, freeBytes: 1, usedBytes: 0, chunkCount: 0 }),
      });
      assert.equal(beat.statusCode, 409);
      assert.equal(
        ((await beat.body.json()) as { error: { code: string } }).error.code,
        'SEDFS_ERR_SERVER_KEY_MISMATCH',
      );
    } finally {
      await impostor.close();
    }
  });

  test('an id enrolled with the token but never registered shows as enrolled; once removed, its certificate is refused', async () => {
    const id = randomBytes(16).toString('hex');
    const key = generateTlsKey();
    const res = await request(`${cluster.mainUrl}/v1/servers/enroll`, {
      dispatcher: cluster.agent,
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${cluster.joinToken}` },
      body: JSON.stringify({ id, publicKey: key.publicKeyPem }),
    });
    assert.equal(res.statusCode, 200);
    const { cert } = (await res.body.json()) as { cert: string };
    const listed = await sedfs('admin', 'servers', '--json');
    const servers = (JSON.parse(listed.stdout) as { servers: { id: string; state: string }[] }).servers;
    assert.equal(servers.find((s) => s.id === id)?.state, 'enrolled');
    const removed = await sedfs('admin', 'admin', 'remove-server', id);
    assert.equal(removed.code, 0, removed.stderr);
    const rogue = createAgent(new TlsIdentity(cluster.ca as string, { certPem: cert, keyPem: key.keyPem }));
    try {
      const reg = await request(`${cluster.mainUrl}/v1/servers/register`, {
        dispatcher: rogue,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          id,
          port: 1,
          stats: { totalBytes: 1, freeBytes: 1, usedBytes: 0, chunkCount: 0 },
        }),
      });
      assert.equal(reg.statusCode, 403);
      assert.equal(
        ((await reg.body.json()) as { error: { code: string } }).error.code,
        'SEDFS_ERR_SERVER_REMOVED',
      );
      const again = await request(`${cluster.mainUrl}/v1/servers/enroll`, {
        dispatcher: cluster.agent,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${cluster.joinToken}` },
        body: JSON.stringify({ id, publicKey: key.publicKeyPem }),
      });
      assert.equal(again.statusCode, 403, 'no new certificate either');
      await again.body.dump();
    } finally {
      await rogue.close();
    }
  });

  test('a certificate is issued only for a plain host: a wildcard or odd host is refused and binds nothing', async () => {
    const id = randomBytes(16).toString('hex');
    const key = generateTlsKey();
    const enroll = (url?: string) =>
      request(`${cluster.mainUrl}/v1/servers/enroll`, {
        dispatcher: cluster.agent,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${cluster.joinToken}` },
        body: JSON.stringify({ id, publicKey: key.publicKeyPem, ...(url ? { url } : {}) }),
      });
    for (const url of [
      'https://*.example.com:9443',
      'https://a*b.example.com:9443',
      'https://-bad-.example:1',
    ]) {
      const res = await enroll(url);
      const body = (await res.body.json()) as { error: { code: string; message: string } };
      assert.equal(res.statusCode, 400, url);
      assert.equal(body.error.code, 'SEDFS_ERR_BAD_REQUEST', url);
      assert.match(body.error.message, /no wildcards/, url);
    }
    // Nothing was bound: the same id and key enrol with a plain host afterwards.
    const ok = await enroll('https://fs-1.example.com:9443');
    assert.equal(ok.statusCode, 200);
    const { cert } = (await ok.body.json()) as { cert: string };
    assert.equal(new X509Certificate(cert).subjectAltName, 'DNS:fs-1.example.com');
  });

  test('a file server whose saved certificate is damaged enrols again with the join token and comes back', async () => {
    await cluster.killFileServer(1, 'SIGTERM');
    writeFileSync(join(cluster.fileServers[1]?.data as string, 'tls', 'cert.pem'), 'not a certificate\n');
    // It listens only once it has a certificate: a throw on the damaged file stopped it before.
    await cluster.startFileServer(1);
    const certPem = readFileSync(join(cluster.fileServers[1]?.data as string, 'tls', 'cert.pem'), 'utf8');
    assert.equal(certificateFacts(certPem).commonName, cluster.fileServers[1]?.id);
    await cluster.waitUp(2);
  });

  test('a new file server joins with the new join string', async () => {
    const added = await cluster.addFileServer();
    const up = await cluster.waitUp(3);
    assert.ok(up.some((s) => s.id === added.id));
  });
});
