import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grantSignedBy, signGrant } from '../../../src/crypto/grant-signature.js';
import { generateIdentity, type SecretIdentity, signMessage } from '../../../src/crypto/identity.js';
import { MAX_DATE_MS } from '../../../src/protocol/limits.js';

const grant = {
  nodeId: 'a'.repeat(32),
  sealedKey: 'c2VhbGVkLWtleQ',
  sealedName: 'c2VhbGVkLW5hbWU',
  signedAt: 1_796_000_000_000,
};

/** Each field with its 4-byte big-endian length before it, as the format is written down in docs/crypto.md. */
function lengthPrefixed(fields: string[]): Buffer {
  return Buffer.concat(
    fields.flatMap((f) => {
      const b = Buffer.from(f, 'utf8');
      const n = Buffer.alloc(4);
      n.writeUInt32BE(b.length);
      return [n, b];
    }),
  );
}

/**
 * A signature made by hand over a grant's v2 statement, whatever its fields hold: signGrant
 * refuses to sign a malformed grant, and a signature over another grant would fail to
 * verify for that reason alone, showing nothing of whether the malformed field is refused.
 */
function signedByHand(owner: SecretIdentity, g: typeof grant): string {
  return signMessage(
    owner,
    lengthPrefixed(['sedfs-grant-v2', g.nodeId, g.sealedKey, g.sealedName, g.signedAt].map(String)),
  );
}

test("a grant's signature verifies under its owner's key, and under no other", () => {
  const owner = generateIdentity();
  const signature = signGrant(owner, grant);
  assert.match(signature, /^[A-Za-z0-9_-]{86}$/);
  assert.equal(grantSignedBy(owner.signKey, grant, signature), true);
  assert.equal(grantSignedBy(generateIdentity().signKey, grant, signature), false);
});

test('a signature does not cover another node, another sealed key, another sealed name or another time', () => {
  const owner = generateIdentity();
  const signature = signGrant(owner, grant);
  for (const changed of [
    { ...grant, nodeId: 'b'.repeat(32) },
    { ...grant, signedAt: grant.signedAt - 1 },
    { ...grant, signedAt: undefined },
    { ...grant, sealedKey: 'b3RoZXI' },
    { ...grant, sealedName: 'b3RoZXI' },
    // The fields' boundaries are part of what is signed: text moved across one is not covered.
    { ...grant, sealedKey: `${grant.sealedKey}c2Vh`, sealedName: grant.sealedName.slice(4) },
    {
      ...grant,
      sealedKey: grant.sealedKey.slice(0, -2),
      sealedName: `${grant.sealedKey.slice(-2)}${grant.sealedName}`,
    },
  ])
    assert.equal(grantSignedBy(owner.signKey, changed, signature), false, JSON.stringify(changed));
});

test('a grant whose node id, key or name is not well formed is neither signed nor accepted: no text can stand for two grants', () => {
  const owner = generateIdentity();
  // As main could send in an unshare's subtree page: an id carrying what would follow it.
  const forged = {
    ...grant,
    nodeId: `${grant.nodeId}\n${grant.sealedKey}`,
    sealedKey: 'AAAA',
    sealedName: 'AAAA',
  };
  for (const bad of [
    forged,
    { ...grant, nodeId: grant.nodeId.toUpperCase() },
    { ...grant, sealedKey: `${grant.sealedKey}=` },
    { ...grant, sealedName: '' },
    { ...grant, sealedName: `${grant.sealedName}\n` },
  ]) {
    assert.throws(() => signGrant(owner, bad), { code: 'SEDFS_ERR_BAD_ANSWER' }, JSON.stringify(bad));
    // Refused even with a signature that is genuinely the owner's over it.
    assert.equal(grantSignedBy(owner.signKey, bad, signedByHand(owner, bad)), false, JSON.stringify(bad));
  }
});

test('a grant missing a field, or with one that is not text, is refused, not an exception: main may leave one out of what it hands back', () => {
  const owner = generateIdentity();
  // Signed by hand over what the field reads as in text ("undefined", "1234"): refused all the same.
  for (const bad of [
    { ...grant, sealedName: undefined },
    { ...grant, sealedKey: undefined },
    { ...grant, nodeId: undefined },
    { ...grant, sealedName: 1234 },
    { ...grant, sealedKey: ['c2VhbGVkLWtleQ'] },
  ] as unknown as (typeof grant)[]) {
    const signature = signedByHand(owner, bad);
    assert.equal(grantSignedBy(owner.signKey, bad, signature), false, JSON.stringify(bad));
    assert.throws(() => signGrant(owner, bad), { code: 'SEDFS_ERR_BAD_ANSWER' }, JSON.stringify(bad));
  }
});

test("a grant whose time is not a whole number of ms from after 1970 to the latest a Date holds is neither signed nor accepted, even with its owner's signature over that very time", () => {
  const owner = generateIdentity();
  assert.equal(
    grantSignedBy(owner.signKey, grant, signedByHand(owner, grant)),
    true,
    'a signature made this way over a well-formed grant verifies',
  );
  for (const signedAt of [
    0,
    -0,
    -1,
    -grant.signedAt,
    1.5,
    grant.signedAt + 0.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    MAX_DATE_MS + 1, // past the latest time a Date holds: it could not be shown
    1e21, // written 1e+21
    // A time as text (main's JSON can carry one): its statement is the number's, byte for byte.
    String(grant.signedAt) as unknown as number,
  ]) {
    const bad = { ...grant, signedAt };
    const shown = `${typeof signedAt} ${String(signedAt)}`;
    assert.throws(() => signGrant(owner, bad), { code: 'SEDFS_ERR_BAD_ANSWER' }, shown);
    assert.equal(grantSignedBy(owner.signKey, bad, signedByHand(owner, bad)), false, shown);
  }
});

test('a grant is signed as sedfs-grant-v2 over its fields and time; one signed before grants were dated (sedfs-grant-v1, no time) still verifies as undated', () => {
  const owner = generateIdentity();
  const { nodeId, sealedKey, sealedName, signedAt } = grant;
  const v2 = signMessage(
    owner,
    lengthPrefixed(['sedfs-grant-v2', nodeId, sealedKey, sealedName, String(signedAt)]),
  );
  assert.equal(
    signGrant(owner, grant),
    v2,
    'Ed25519 is deterministic: the same statement, the same signature',
  );
  const v1 = signMessage(owner, lengthPrefixed(['sedfs-grant-v1', nodeId, sealedKey, sealedName]));
  assert.equal(grantSignedBy(owner.signKey, { nodeId, sealedKey, sealedName }, v1), true);
  assert.equal(grantSignedBy(owner.signKey, grant, v1), false, 'an undated signature does not date a grant');
});

test('a malformed signature is false, not an exception', () => {
  const owner = generateIdentity();
  for (const bad of ['', 'AAAA', 'A'.repeat(86), '!'.repeat(86)])
    assert.equal(grantSignedBy(owner.signKey, grant, bad), false, bad);
});
