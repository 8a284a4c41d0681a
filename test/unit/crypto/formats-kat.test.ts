import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { describe, test } from 'node:test';
import { ChunkSealer, chunkAad, chunkNonce, openChunk } from '../../../src/crypto/content.js';
import {
  generateIdentity,
  isRawKey,
  openSealed,
  type SecretIdentity,
  sealTo,
  signMessage,
  verifySignature,
} from '../../../src/crypto/identity.js';
import {
  decryptName,
  encryptName,
  nameMac,
  unwrapContentKey,
  unwrapNodeKey,
  wrapNodeKey,
} from '../../../src/crypto/node-keys.js';
import { lockWithPassphrase, unlockWithPassphrase } from '../../../src/crypto/passphrase.js';

/**
 * Known-answer vectors. They pin the on-disk and on-wire formats: a change that breaks
 * one breaks every stored file, so it must be a deliberate, versioned change.
 */
const VERSION = '00112233445566778899aabbccddeeff';
const CONTENT_KEY = Buffer.alloc(32, 7);
const PARENT_KEY = Buffer.alloc(32, 1);

describe('chunk format (AES-256-GCM, nonce = index, AAD = version, index, last)', () => {
  test('sealing gives the pinned bytes', () => {
    const s = new ChunkSealer(VERSION, CONTENT_KEY);
    assert.equal(
      s.seal(0, false, Buffer.from('hello chunk zero')).toString('hex'),
      '09bdc8de94b268809469e444be1e39c1e8f709e6ad6a1d96769058e9746cde8d',
    );
    assert.equal(
      s.seal(1, true, Buffer.from('last')).toString('hex'),
      '5c29ca1428bc953498e6fada1347889bc9b29956',
    );
  });

  test('matches an independent construction from the documented parameters', () => {
    const nonce = Buffer.alloc(12);
    nonce.writeUInt32BE(5, 8);
    const aad = Buffer.concat([
      Buffer.from('sedfs-chunk-v1'),
      Buffer.from(VERSION, 'hex'),
      Buffer.from([0, 0, 0, 0, 0, 0, 0, 5, 1]),
    ]);
    assert.deepEqual(chunkNonce(5), nonce);
    assert.deepEqual(chunkAad(VERSION, 5, true), aad);
    const c = createCipheriv('aes-256-gcm', CONTENT_KEY, nonce);
    c.setAAD(aad);
    const expected = Buffer.concat([c.update(Buffer.from('independent')), c.final(), c.getAuthTag()]);
    assert.deepEqual(
      new ChunkSealer(VERSION, CONTENT_KEY).seal(5, true, Buffer.from('independent')),
      expected,
    );
  });

  test('opening fails for a flipped byte, another index, another version or a wrong last flag', () => {
    const stored = new ChunkSealer(VERSION, CONTENT_KEY).seal(3, false, Buffer.from('some bytes'));
    assert.equal(openChunk(CONTENT_KEY, VERSION, 3, false, stored).toString(), 'some bytes');
    const flipped = Buffer.from(stored);
    flipped[0] = (flipped[0] as number) ^ 1;
    for (const [key, version, index, last, bytes] of [
      [CONTENT_KEY, VERSION, 3, false, flipped],
      [CONTENT_KEY, VERSION, 4, false, stored],
      [CONTENT_KEY, 'ff'.repeat(16), 3, false, stored],
      [CONTENT_KEY, VERSION, 3, true, stored],
      [Buffer.alloc(32, 8), VERSION, 3, false, stored],
    ] as const) {
      assert.throws(() => openChunk(key, version, index, last, bytes), { code: 'SEDFS_ERR_CORRUPT_CHUNK' });
    }
  });

  test('sealing and opening into reused buffers give the same bytes as fresh ones, across slices', () => {
    // Over two 1 MiB slices and a ragged end, into buffers bigger than needed and dirty.
    const plain = Buffer.alloc(2 * 1024 * 1024 + 333);
    for (let i = 0; i < plain.length; i++) plain[i] = (i * 31) & 0xff;
    const fresh = new ChunkSealer(VERSION, CONTENT_KEY).seal(2, true, plain);
    const into = Buffer.alloc(plain.length + 4096, 0xee);
    const reused = new ChunkSealer(VERSION, CONTENT_KEY).seal(2, true, plain, into);
    assert.equal(reused.length, plain.length + 16);
    assert.ok(reused.equals(fresh));
    assert.equal(reused.buffer, into.buffer, 'sealed in place, not copied elsewhere');
    const opened = openChunk(CONTENT_KEY, VERSION, 2, true, reused, Buffer.alloc(plain.length + 7, 0xdd));
    assert.ok(opened.equals(plain));
    assert.throws(
      () => new ChunkSealer(VERSION, CONTENT_KEY).seal(0, true, plain, Buffer.alloc(plain.length)),
      {
        message: /too small/,
      },
    );
  });

  test('a chunk of several slices opens in place, in the memory it was stored in', () => {
    const plain = Buffer.alloc(3 * 1024 * 1024 + 5);
    for (let i = 0; i < plain.length; i++) plain[i] = (i * 7 + 3) & 0xff;
    const stored = Buffer.from(new ChunkSealer(VERSION, CONTENT_KEY).seal(4, false, plain));
    const opened = openChunk(CONTENT_KEY, VERSION, 4, false, stored, stored);
    assert.equal(opened.buffer, stored.buffer, 'opened where it was stored');
    assert.equal(opened.byteOffset, stored.byteOffset);
    assert.ok(opened.equals(plain));
  });

  test('a sealer never uses a chunk index (nonce) twice, and every upload gets its own key', () => {
    const s = new ChunkSealer(VERSION);
    s.seal(0, false, Buffer.from('a'));
    assert.throws(() => s.seal(0, false, Buffer.from('b')), /already sealed/);
    const keys = new Set(Array.from({ length: 100 }, () => new ChunkSealer(VERSION).key.toString('hex')));
    assert.equal(keys.size, 100);
  });
});

describe('names and key wrapping', () => {
  test('pinned vectors decrypt to the pinned values', () => {
    assert.equal(
      decryptName(
        PARENT_KEY,
        'aa'.repeat(16),
        'dd'.repeat(16),
        'jyZdx4RwRxm3cAumlbgewR4-DIEfxSIT81Bn3Ig71lZvg6IGV94',
      ),
      'report.pdf',
    );
    // Sealed before names were bound to their node (AAD `name:<parent id>`): still opens.
    assert.equal(
      decryptName(
        PARENT_KEY,
        'aa'.repeat(16),
        'dd'.repeat(16),
        'x-ubkx8qRs_6b4ZQBHu6jitdF7hNl0140OMoat7OYVE3yoXixmA',
      ),
      'report.pdf',
    );
    assert.deepEqual(
      unwrapNodeKey(
        PARENT_KEY,
        'bb'.repeat(16),
        'J2Ixi2x0El6Or_txi8AOuG_2YTf9x_ntzC1SciuidyUkgcjqWbl1VixuQGllQa6zZgfvJnguYNvmdYbW',
      ),
      Buffer.alloc(32, 2),
    );
    assert.deepEqual(
      unwrapContentKey(
        PARENT_KEY,
        'cc'.repeat(16),
        'tQ-VyT1Xnyc7UhoVAcuvUImQ-GgbXM5iS-_V87IYWZ41ZoCwNd7I4gHTsVI7q3LzZC0sniDQ5O2em57X',
      ),
      Buffer.alloc(32, 3),
    );
    assert.equal(
      nameMac(PARENT_KEY, 'report.pdf'),
      '2da9726c341e2bc7bf715434c53f4a3fa1ec04a5abaf93df9c264dc6345059bc',
    );
  });

  test('a name is bound to its parent and its node: moved to another parent or node it does not open', () => {
    const sealed = encryptName(PARENT_KEY, 'aa'.repeat(16), 'dd'.repeat(16), 'secret plan.txt');
    assert.equal(decryptName(PARENT_KEY, 'aa'.repeat(16), 'dd'.repeat(16), sealed), 'secret plan.txt');
    assert.throws(() => decryptName(PARENT_KEY, 'ab'.repeat(16), 'dd'.repeat(16), sealed), {
      code: 'SEDFS_ERR_DECRYPT',
    });
    assert.throws(() => decryptName(PARENT_KEY, 'aa'.repeat(16), 'de'.repeat(16), sealed), {
      code: 'SEDFS_ERR_DECRYPT',
    });
  });

  test('a wrapped key is bound to its node id', () => {
    const wrapped = wrapNodeKey(PARENT_KEY, 'bb'.repeat(16), Buffer.alloc(32, 9));
    assert.throws(() => unwrapNodeKey(PARENT_KEY, 'bc'.repeat(16), wrapped), { code: 'SEDFS_ERR_DECRYPT' });
  });

  test('the name MAC is the same for NFC and NFD spellings, and differs under another parent key', () => {
    assert.equal(nameMac(PARENT_KEY, 'caf\u00e9'), nameMac(PARENT_KEY, 'cafe\u0301'));
    assert.notEqual(nameMac(PARENT_KEY, 'a'), nameMac(Buffer.alloc(32, 2), 'a'));
  });

  test("a key buffer written over with another key's bytes works as that key, not as the one it held", () => {
    const key = Buffer.alloc(32, 3);
    const id = 'cc'.repeat(16);
    const sealedBefore = encryptName(key, 'aa'.repeat(16), id, 'before');
    const macBefore = nameMac(key, 'x');
    key.fill(4);
    assert.equal(nameMac(key, 'x'), nameMac(Buffer.alloc(32, 4), 'x'));
    assert.notEqual(nameMac(key, 'x'), macBefore);
    assert.throws(() => decryptName(key, 'aa'.repeat(16), id, sealedBefore), { code: 'SEDFS_ERR_DECRYPT' });
    const sealedAfter = encryptName(Buffer.alloc(32, 4), 'aa'.repeat(16), id, 'after');
    assert.equal(decryptName(key, 'aa'.repeat(16), id, sealedAfter), 'after');
  });
});

describe('identity keys', () => {
  const ME: SecretIdentity = {
    signKey: 'S-O9COzhIYuNlTVsEgHNXjgkVJWGz8G2yr-pg_M_8rM',
    signSecret: '6KB8lHxYF7efaYWwKJov6SoPkVJwugjUXnITYIfNpQM',
    boxKey: 'DwoPGcrgqZLVQR96lURH94d0_C1Mt6s9dFsUn4mUtlM',
    boxSecret: '4El17Y4ws42U32cXGh9SBqkDFqspdWwbC3_xV7XWF0g',
  };

  test('a pinned sealed key opens with the pinned identity, and not with another context', () => {
    const sealed = Buffer.from(
      'UK8Hg2jPW23IulMNVdvDR0tSKomNGQNgV6I7v33AnzF8WlnnN9tD8JyMX65GqIA_ZmGJYX2mwy6KfAtIrbn8z4KsMPK4x0gjOm-IKLNBPZLdvLHnDjzcsy87Bt8',
      'base64url',
    );
    assert.deepEqual(openSealed(ME, sealed, `root:${'dd'.repeat(16)}`), Buffer.alloc(32, 4));
    assert.throws(() => openSealed(ME, sealed, `root:${'de'.repeat(16)}`), { code: 'SEDFS_ERR_DECRYPT' });
  });

  test('Ed25519 signatures are the pinned deterministic value and verify only for their message', () => {
    const sig = signMessage(ME, Buffer.from('hello'));
    assert.equal(
      sig,
      'DDrc6klp-b-1R2ooEEwmubtbDhenWlQHaNunQaHFl1iuil-VmvmKq3KBavEXz_xa-s4TJZcYN-fLNN14FOnoCg',
    );
    assert.ok(verifySignature(ME.signKey, Buffer.from('hello'), sig));
    assert.ok(!verifySignature(ME.signKey, Buffer.from('hellp'), sig));
  });

  test("a new identity's raw keys are its own pairs': it verifies what it signs and opens what is sealed to it", () => {
    // Many, so that a slip in where the raw key sits in its encoding cannot pass by luck.
    for (let i = 0; i < 50; i++) {
      const id = generateIdentity();
      for (const k of [id.signKey, id.signSecret, id.boxKey, id.boxSecret]) assert.ok(isRawKey(k), k);
      const sig = signMessage(id, Buffer.from('hello'));
      assert.ok(verifySignature(id.signKey, Buffer.from('hello'), sig));
      assert.equal(openSealed(id, sealTo(id.boxKey, Buffer.from('k'), 'ctx'), 'ctx').toString(), 'k');
      assert.throws(() => openSealed(ME, sealTo(id.boxKey, Buffer.from('k'), 'ctx'), 'ctx'), {
        code: 'SEDFS_ERR_DECRYPT',
      });
    }
  });

  test('sealing to a key and opening round-trips; each seal differs (ephemeral key)', () => {
    const a = sealTo(ME.boxKey, Buffer.from('k'), 'ctx');
    const b = sealTo(ME.boxKey, Buffer.from('k'), 'ctx');
    assert.notDeepEqual(a, b);
    assert.equal(openSealed(ME, a, 'ctx').toString(), 'k');
  });
});

describe('passphrase boxes', () => {
  test('the right passphrase opens, a wrong one is SEDFS_ERR_BAD_PASSPHRASE', () => {
    const box = lockWithPassphrase('correct horse', Buffer.from('secret keys'), { N: 2 ** 10, r: 8, p: 1 });
    assert.equal(unlockWithPassphrase('correct horse', box).toString(), 'secret keys');
    assert.throws(() => unlockWithPassphrase('wrong', box), { code: 'SEDFS_ERR_BAD_PASSPHRASE' });
  });

  test('absurd key-derivation settings in a tampered profile are refused before any work', () => {
    const box = lockWithPassphrase('pw', Buffer.from('x'), { N: 2 ** 10, r: 8, p: 1 });
    assert.throws(() => unlockWithPassphrase('pw', { ...box, N: 2 ** 30 }), { code: 'SEDFS_ERR_CONFIG' });
  });
});
