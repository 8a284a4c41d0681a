import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { certifiesKey, generateTlsKey } from '../../../src/crypto/certificates.js';
import { createCa } from '../../../src/crypto/cluster-ca.js';
import { setUpMainTls } from '../../../src/main-server/main-tls.js';

const root = mkdtempSync(join(tmpdir(), 'sedfs-main-tls-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => mkdtempSync(join(root, `d${n++}-`));
const HOUR = 3600_000;

/** Starts main's TLS in `data` as a start would, and stops its renewals. */
async function start(data: string, lines: { msg: string }[] = []) {
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const tls = await setUpMainTls(data, '127.0.0.1', HOUR, log);
  tls.stop();
  return tls;
}

const read = (data: string, f: string) => readFileSync(join(data, 'tls', f), 'utf8');

test('a second start keeps the cluster CA the first one made', async () => {
  const data = fresh();
  const first = await start(data);
  const second = await start(data);
  assert.equal(second.fingerprint, first.fingerprint);
  assert.equal(second.ca.keyPem, first.ca.keyPem);
});

test('a first start that stopped after writing the CA key but before its certificate starts: the key is kept and certified', async () => {
  const data = fresh();
  const key = generateTlsKey();
  const tlsDir = join(data, 'tls');
  mkdirSync(tlsDir);
  writeFileSync(join(tlsDir, 'ca-key.pem'), key.keyPem, { mode: 0o600 });
  const lines: { msg: string }[] = [];
  const tls = await start(data, lines);
  assert.equal(read(data, 'ca-key.pem'), key.keyPem, 'the key on disk is never replaced');
  assert.ok(certifiesKey(read(data, 'ca.pem'), key.keyPem));
  assert.equal(tls.ca.keyPem, key.keyPem);
  assert.ok(lines.some((l) => /written but not its certificate/.test(l.msg)));
  assert.equal((await start(data)).fingerprint, tls.fingerprint, 'and it is the CA from then on');
});

test('a ca.pem lost after main ran stops the start with what to do, and leaves the CA key alone', async () => {
  const data = fresh();
  const first = await start(data);
  unlinkSync(join(data, 'tls', 'ca.pem'));
  await assert.rejects(start(data), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'SEDFS_ERR_CONFIG');
    assert.match(err.message, /ca\.pem is missing: copy it back from any file server/);
    return true;
  });
  assert.equal(read(data, 'ca-key.pem'), first.ca.keyPem);
  // Copied back (every file server keeps one), main starts with the CA it had.
  writeFileSync(join(data, 'tls', 'ca.pem'), first.ca.certPem);
  assert.equal((await start(data)).fingerprint, first.fingerprint);
});

test('a lost CA key stops the start with what to do, and leaves ca.pem alone', async () => {
  const data = fresh();
  const first = await start(data);
  unlinkSync(join(data, 'tls', 'ca-key.pem'));
  await assert.rejects(
    start(data),
    /ca-key\.pem is missing beside .*ca\.pem: the cluster CA cannot sign without it/,
  );
  assert.equal(read(data, 'ca.pem'), first.ca.certPem);
});

test('a CA key and certificate that do not belong together stop the start', async () => {
  const data = fresh();
  await start(data);
  writeFileSync(join(data, 'tls', 'ca.pem'), (await createCa()).certPem);
  await assert.rejects(start(data), /ca\.pem is not the certificate of .*ca-key\.pem/);
});

test('a damaged CA file stops the start with a clear error', async () => {
  const data = fresh();
  await start(data);
  writeFileSync(join(data, 'tls', 'ca.pem'), '-----BEGIN CERTIFICATE-----\nnot one\n');
  await assert.rejects(start(data), /is damaged/);
});

test('main makes its tls/ folder durably, 0700, before the CA goes in it', async () => {
  const data = fresh();
  const synced: string[] = [];
  const tls = await setUpMainTls(data, '127.0.0.1', HOUR, pino({ level: 'silent' }), async (d) => {
    synced.push(d);
  });
  tls.stop();
  assert.equal(synced[0], data, "tls/'s entry in the data folder first");
  assert.ok(
    synced.slice(1).every((d) => d === join(data, 'tls')),
    'then the files written into it',
  );
  assert.equal(statSync(join(data, 'tls')).mode & 0o777, 0o700);
});
