import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConfig } from '../../../src/common/config.js';
import { createAgent } from '../../../src/common/http-client.js';
import { TlsIdentity } from '../../../src/common/tls.js';
import { type Agent, request } from '../../../src/common/undici.js';
import { generateTlsKey } from '../../../src/crypto/certificates.js';
import { issueCertificate } from '../../../src/crypto/cluster-ca.js';
import { MAIN_CONFIG } from '../../../src/main-server/main-config.js';
import { startMain } from '../../../src/main-server/main-server.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';
import { waitFor } from '../../helpers/cluster.js';

const stats = { totalBytes: 1, freeBytes: 1, usedBytes: 0, chunkCount: 0 };
const [OVER_TLS, OVER_HTTP] = ['a1'.repeat(16), 'b2'.repeat(16)];

test('a server id registered before ids were bound to keys is bound by its own certificate only, never by whoever holds the join token', {
  timeout: 60_000,
}, async () => {
  const data = mkdtempSync(join(tmpdir(), 'sedfs-enrol-legacy-'));
  // main.db as an older version left it: servers registered, no key bound to their ids.
  mkdirSync(data, { recursive: true });
  const old = new SqliteStore(join(data, 'main.db'));
  for (const [id, url] of [
    [OVER_TLS, 'https://127.0.0.1:7001'],
    [OVER_HTTP, 'http://127.0.0.1:7002'],
  ] as const)
    old.registerServer({ id, url, ...stats, registeredAt: 1, lastHeartbeat: 1 }, 'receipt-key');
  old.close();
  const main = await startMain(
    parseConfig(MAIN_CONFIG, { host: '127.0.0.1', port: 0, data, replicas: '1' }, {}),
    { console: false },
  );
  const ca = readFileSync(join(data, 'tls', 'ca.pem'), 'utf8');
  const withToken = createAgent(new TlsIdentity(ca), { mainUrl: main.url });
  const agents: Agent[] = [withToken];
  const enrol = async (agent: Agent, id: string, publicKey: string, token?: string) => {
    const res = await request(`${main.url}/v1/servers/enroll`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ id, publicKey }),
    });
    const body = (await res.body.json()) as { error?: { code: string } };
    return { status: res.statusCode, code: body.error?.code };
  };
  try {
    const stranger = generateTlsKey();
    assert.deepEqual(await enrol(withToken, OVER_TLS, stranger.publicKeyPem, main.joinToken), {
      status: 409,
      code: 'SEDFS_ERR_SERVER_KEY_MISMATCH',
    });
    await waitFor('the refusal in main.log', () =>
      readFileSync(join(data, 'main.log'), 'utf8').includes('only its own certificate binds it'),
    );

    // The server itself, with the certificate the CA issued it back then, binds its key.
    const own = generateTlsKey();
    const legacyCert = await issueCertificate(
      { keyPem: readFileSync(join(data, 'tls', 'ca-key.pem'), 'utf8'), certPem: ca },
      { publicKeyPem: own.publicKeyPem, commonName: OVER_TLS, hosts: ['127.0.0.1'], lifetimeMs: 3600_000 },
    );
    const asServer = createAgent(new TlsIdentity(ca, { certPem: legacyCert, keyPem: own.keyPem }), {
      mainUrl: main.url,
    });
    agents.push(asServer);
    assert.deepEqual(await enrol(asServer, OVER_TLS, own.publicKeyPem), { status: 200, code: undefined });
    // From then on the token gets no other key certified under it.
    assert.equal((await enrol(withToken, OVER_TLS, stranger.publicKeyPem, main.joinToken)).status, 409);

    // One that only ever ran on plain HTTP had the token as its only credential: it enrols with it.
    assert.equal(
      (await enrol(withToken, OVER_HTTP, generateTlsKey().publicKeyPem, main.joinToken)).status,
      200,
    );
  } finally {
    await Promise.all(agents.map((a) => a.close()));
    await main.close();
    rmSync(data, { recursive: true, force: true });
  }
});
