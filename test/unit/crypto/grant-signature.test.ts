import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grantSignedBy, signGrant } from '../../../src/crypto/grant-signature.js';
import { generateIdentity } from '../../../src/crypto/identity.js';

const grant = { nodeId: 'a'.repeat(32), sealedKey: 'c2VhbGVkLWtleQ', sealedName: 'c2VhbGVkLW5hbWU' };

test("a grant's signature verifies under its owner's key, and under no other", () => {
  const owner = generateIdentity();
  const signature = signGrant(owner, grant);
  assert.match(signature, /^[A-Za-z0-9_-]{86}$/);
  assert.equal(grantSignedBy(owner.signKey, grant, signature), true);
  assert.equal(grantSignedBy(generateIdentity().signKey, grant, signature), false);
});

test('a signature does not cover another node, another sealed key or another sealed name', () => {
  const owner = generateIdentity();
  const signature = signGrant(owner, grant);
  for (const changed of [
    { ...grant, nodeId: 'b'.repeat(32) },
    { ...grant, sealedKey: 'b3RoZXI' },
    { ...grant, sealedName: 'b3RoZXI' },
    // The fields' boundaries are part of what is signed: moving text across one changes it.
    { ...grant, sealedKey: `${grant.sealedKey}\n${grant.sealedName}`, sealedName: '' },
  ])
    assert.equal(grantSignedBy(owner.signKey, changed, signature), false, JSON.stringify(changed));
});

test('a malformed signature is false, not an exception', () => {
  const owner = generateIdentity();
  for (const bad of ['', 'AAAA', 'A'.repeat(86), '!'.repeat(86)])
    assert.equal(grantSignedBy(owner.signKey, grant, bad), false, bad);
});
