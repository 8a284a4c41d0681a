import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import pino from 'pino';
import { createAgent, requestJson } from '../../../src/common/http-client.js';
import { TlsIdentity } from '../../../src/common/tls.js';
import { generateTlsKey } from '../../../src/crypto/certificates.js';
import { type CaMaterial, createCa, issueCertificate } from '../../../src/crypto/cluster-ca.js';
import { answersAs, PROBE_REFUSAL_MS, throttleProbes } from '../../../src/main-server/address-probe.js';
import { Registry } from '../../../src/main-server/registry.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';

/** The server id on the test server's certificate. */
const SHOWN = 'a1'.repeat(16);
const dir = mkdtempSync(join(tmpdir(), 'sedfs-probe-'));
let ca: CaMaterial;
let server: Server;
let url: string;
/** the common name of the client certificate each connection showed */
const clientNames: string[] = [];

const certFor = async (commonName: string) => {
  const key = generateTlsKey();
  const certPem = await issueCertificate(ca, {
    publicKeyPem: key.publicKeyPem,
    commonName,
    hosts: ['127.0.0.1'],
    lifetimeMs: 3600_000,
  });
  return { certPem, keyPem: key.keyPem };
};

before(async () => {
  ca = await createCa();
  const own = await certFor(SHOWN);
  server = createServer(
    { key: own.keyPem, cert: own.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false },
    (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: SHOWN }));
    },
  );
  server.on('secureConnection', (socket: TLSSocket) =>
    clientNames.push(String(socket.getPeerCertificate().subject?.CN)),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

test("probing an address holds nothing after it: probes leave no more listeners on main's certificate renewals than before", async () => {
  const identity = new TlsIdentity(ca.certPem, await certFor('main'));
  const before = identity.renewListeners;
  for (let i = 0; i < 5; i++) {
    assert.equal(await answersAs(identity, url, SHOWN), true);
    assert.equal(await answersAs(identity, url, 'b2'.repeat(16)), false);
  }
  assert.equal(identity.renewListeners, before);
  // What does subscribe (a server's secure context) can stop.
  let told = 0;
  const stop = identity.onRenew(() => told++);
  identity.renew(identity.certPem as string, identity.keyPem as string);
  stop();
  identity.renew(identity.certPem as string, identity.keyPem as string);
  assert.equal(told, 1);
  assert.equal(identity.renewListeners, before);
});

test('connections made after a renewal show the renewed certificate, through an agent made before it', async () => {
  const identity = new TlsIdentity(ca.certPem, await certFor('first'));
  const agent = createAgent(identity, { serverNames: () => [SHOWN] });
  // A connection of its own each time: a kept one would show what its handshake did.
  const ask = () => requestJson(agent, `${url}/v1/health`, { headers: { connection: 'close' } });
  try {
    clientNames.length = 0;
    await ask();
    const renewed = await certFor('renewed');
    identity.renew(renewed.certPem, renewed.keyPem);
    await ask();
    assert.deepEqual(clientNames, ['first', 'renewed']);
  } finally {
    await agent.close();
  }
});

test('a server refused at an address is probed there again only after 30 s, asks at once share one probe, and a yes is never reused', async () => {
  const clock = { now: 1_000 };
  let answer = false;
  const asked: string[] = [];
  const probe = throttleProbes(
    async (u, id) => {
      asked.push(`${id}@${u}`);
      await new Promise((resolve) => setImmediate(resolve));
      return answer;
    },
    () => clock.now,
  );
  const [a, b] = ['a1'.repeat(16), 'b2'.repeat(16)];
  assert.deepEqual(await Promise.all([probe('https://x:1', a), probe('https://x:1', a)]), [false, false]);
  assert.equal(asked.length, 1, 'one probe for both');
  clock.now += PROBE_REFUSAL_MS - 1;
  answer = true;
  assert.equal(await probe('https://x:1', a), false, 'the last answer stands meanwhile');
  assert.equal(asked.length, 1);
  assert.equal(await probe('https://x:1', b), true, 'another server is asked about');
  assert.equal(await probe('https://x:2', a), true, 'another address is asked about');
  clock.now += 1;
  assert.equal(await probe('https://x:1', a), true);
  assert.equal(await probe('https://x:1', a), true);
  assert.equal(asked.length, 5, 'a yes is asked again each time');
});

test('a second registration refused at an address within 30 s does not probe the address again', async () => {
  const store = new SqliteStore(join(dir, 'throttle.db'));
  const clock = { now: 1_000 };
  let probes = 0;
  const registry = new Registry(
    store,
    pino({ level: 'silent' }),
    () => clock.now,
    2000,
    600_000,
    'https',
    throttleProbes(
      async () => {
        probes++;
        return false;
      },
      () => clock.now,
    ),
  );
  const stats = { totalBytes: 100, freeBytes: 50, usedBytes: 10, chunkCount: 0 };
  const [a, b] = ['a1'.repeat(16), 'b2'.repeat(16)];
  const at = (id: string) => ({ id, port: 7001, url: 'https://files.example:7001', stats });
  try {
    await registry.register(at(a), '10.0.0.1');
    for (let i = 0; i < 6; i++) {
      await assert.rejects(registry.register(at(b), '10.0.0.2'), { code: 'SEDFS_ERR_EXISTS' });
      clock.now += 5_000;
      registry.heartbeat(a, stats);
    }
    assert.equal(probes, 1);
    await assert.rejects(registry.register(at(b), '10.0.0.2'), { code: 'SEDFS_ERR_EXISTS' });
    assert.equal(probes, 2, 'probed again once 30 s have passed');
  } finally {
    store.close();
  }
});
