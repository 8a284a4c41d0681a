import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { generateTlsKey } from '../../../src/crypto/certificates.js';
import { keyPairIn } from '../../../src/file-server/enroll.js';

const root = mkdtempSync(join(tmpdir(), 'sedfs-enroll-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => mkdtempSync(join(root, `k${n++}-`));

test('the first start makes key.pem (0600) and the matching public.pem; later starts keep them', async () => {
  const dir = fresh();
  const keyPem = await keyPairIn(dir);
  assert.equal(readFileSync(join(dir, 'key.pem'), 'utf8'), keyPem);
  if (process.platform !== 'win32') assert.equal(statSync(join(dir, 'key.pem')).mode & 0o777, 0o600);
  const publicPem = readFileSync(join(dir, 'public.pem'), 'utf8');
  assert.equal(await keyPairIn(dir), keyPem);
  assert.equal(readFileSync(join(dir, 'public.pem'), 'utf8'), publicPem);
});

test('a key.pem left without its public.pem (a crash between the two writes) gets it back, derived from the key', async () => {
  const dir = fresh();
  const key = generateTlsKey();
  writeFileSync(join(dir, 'key.pem'), key.keyPem, { mode: 0o600 });
  assert.equal(await keyPairIn(dir), key.keyPem);
  assert.equal(readFileSync(join(dir, 'public.pem'), 'utf8'), key.publicKeyPem);
});

test("a public.pem that is not the key's is replaced by the key's", async () => {
  const dir = fresh();
  const key = generateTlsKey();
  writeFileSync(join(dir, 'key.pem'), key.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'public.pem'), generateTlsKey().publicKeyPem);
  await keyPairIn(dir);
  assert.equal(readFileSync(join(dir, 'public.pem'), 'utf8'), key.publicKeyPem);
});
