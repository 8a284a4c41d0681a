import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import {
  certificateFacts,
  fingerprintOf,
  generateTlsKey,
  issuedBy,
  normalizeFingerprint,
  validityRenewalDue,
} from '../../../src/crypto/certificates.js';
import { createCa, issueCertificate } from '../../../src/crypto/cluster-ca.js';
import { parseJoinString } from '../../../src/protocol/join-string.js';

test('a certificate the cluster CA issues chains to it, names the server and its hosts, and lives as long as asked', async () => {
  const ca = await createCa();
  const caCert = new X509Certificate(ca.certPem);
  assert.equal(caCert.ca, true);
  const key = generateTlsKey();
  const pem = await issueCertificate(ca, {
    publicKeyPem: key.publicKeyPem,
    commonName: 'ab'.repeat(16),
    hosts: ['10.1.2.3', 'fs1.example'],
    lifetimeMs: 3600_000,
  });
  const cert = new X509Certificate(pem);
  assert.ok(issuedBy(pem, ca.certPem));
  assert.equal(cert.ca, false);
  assert.equal(cert.checkIP('10.1.2.3'), '10.1.2.3');
  assert.equal(cert.checkHost('fs1.example'), 'fs1.example');
  assert.equal(cert.checkHost('other.example'), undefined);
  assert.ok(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(key.keyPem)));
  const facts = certificateFacts(pem);
  assert.equal(facts.commonName, 'ab'.repeat(16));
  assert.ok(Math.abs(facts.notAfter - Date.now() - 3600_000) < 5000);
  assert.match(facts.serial, /^[0-9a-f]+$/);
});

test('a certificate from another CA, or an expired one, is not taken as issued by ours', async () => {
  const ours = await createCa();
  const theirs = await createCa();
  const { publicKeyPem } = generateTlsKey();
  const foreign = await issueCertificate(theirs, {
    publicKeyPem,
    commonName: 'main',
    hosts: ['127.0.0.1'],
    lifetimeMs: 60_000,
  });
  assert.equal(issuedBy(foreign, ours.certPem), false);
  const mine = await issueCertificate(ours, {
    publicKeyPem,
    commonName: 'main',
    hosts: ['127.0.0.1'],
    lifetimeMs: 60_000,
  });
  assert.equal(issuedBy(mine, ours.certPem, Date.now() + 3600_000), false);
  assert.notEqual(fingerprintOf(ours.certPem), fingerprintOf(theirs.certPem));
});

test('fingerprints are 64 lowercase hex; colons and capitals given by people are forgiven', async () => {
  const ca = await createCa();
  const fp = fingerprintOf(ca.certPem);
  assert.match(fp, /^[0-9a-f]{64}$/);
  assert.equal(normalizeFingerprint(new X509Certificate(ca.certPem).fingerprint256), fp);
  assert.equal(normalizeFingerprint('not a fingerprint'), undefined);
});

test('a join string carries main, token and fingerprint; anything else is a clear config error', () => {
  const fp = 'ab'.repeat(32);
  assert.deepEqual(parseJoinString(`sedfs://tok_en-1@10.0.0.5:7000#${fp}`), {
    mainUrl: 'https://10.0.0.5:7000',
    joinToken: 'tok_en-1',
    caFingerprint: fp,
  });
  for (const bad of ['https://10.0.0.5:7000', `sedfs://@h:1#${fp}`, 'sedfs://t@h:1#abc'])
    assert.throws(() => parseJoinString(bad), { code: 'SEDFS_ERR_CONFIG' });
});

test('a certificate is due for renewal once a third of the life it was issued for is left, however short, not counting the minute it is dated back', async () => {
  const ca = await createCa();
  for (const lifetimeMs of [6_000, 20_000, 3600_000]) {
    const pem = await issueCertificate(ca, {
      publicKeyPem: generateTlsKey().publicKeyPem,
      commonName: 'cd'.repeat(16),
      hosts: ['127.0.0.1'],
      lifetimeMs,
    });
    const facts = certificateFacts(pem);
    assert.equal(
      validityRenewalDue(facts, facts.notAfter - lifetimeMs),
      false,
      `${lifetimeMs}: not at issue`,
    );
    assert.equal(
      validityRenewalDue(facts, facts.notAfter - lifetimeMs * 0.4),
      false,
      `${lifetimeMs}: not with 40 % left`,
    );
    assert.equal(
      validityRenewalDue(facts, facts.notAfter - lifetimeMs * 0.3),
      true,
      `${lifetimeMs}: with 30 % left`,
    );
  }
});
