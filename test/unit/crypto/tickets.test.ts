import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { receiptFor, receiptValid } from '../../../src/crypto/receipts.js';
import { generateTicketKeyPem, ticketSigner, ticketVerifier, uploadOf } from '../../../src/crypto/tickets.js';

/** A fixed key: Ed25519 is deterministic, so the same payload always gives the same ticket. */
const KEY_PEM =
  '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIC4leLM3Ye1LN7H9H+p4mah2SxtP9jh0B8c3d5judQ85\n-----END PRIVATE KEY-----\n';
const CHUNK = 'ab'.repeat(32);
const SERVER = 'cd'.repeat(16);
const UPLOAD = '12'.repeat(16);
const EXP = 4102444800000; // 2100-01-01
const PINNED =
  'eyJ2IjoxLCJvcCI6InJlYWQiLCJjaHVua3MiOlsiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYiJdLCJzZXJ2ZXJzIjpbImNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkIl0sImV4cCI6NDEwMjQ0NDgwMDAwMH0.pJUg0f-x4crLSlmsEIijFdLE3vAJoKl5q2FYMfsh2o_ocufSfLt_U0igmVdrUhG3VJGWkHQQifbRmLpBzYrrAQ';

describe('tickets', () => {
  const signer = ticketSigner(KEY_PEM);
  const verify = ticketVerifier(signer.publicKeyPem);
  const now = 1_000_000;

  test('the wire format is pinned: a fixed key and payload give the known ticket', () => {
    assert.equal(signer.sign({ op: 'read', chunks: [CHUNK], servers: [SERVER], exp: EXP }), PINNED);
  });

  test('a ticket verifies for its chunk, operation and server, before it expires', () => {
    const p = verify(PINNED, { op: 'read', chunk: CHUNK, server: SERVER, now });
    assert.deepEqual(p.chunks, [CHUNK]);
  });

  test('another chunk, operation or server is a 403 mismatch; expiry a 401', () => {
    const other = 'ef'.repeat(32);
    assert.throws(() => verify(PINNED, { op: 'read', chunk: other, server: SERVER, now }), {
      code: 'SEDFS_ERR_TICKET_MISMATCH',
      status: 403,
    });
    assert.throws(() => verify(PINNED, { op: 'write', chunk: CHUNK, server: SERVER, now }), {
      code: 'SEDFS_ERR_TICKET_MISMATCH',
    });
    assert.throws(() => verify(PINNED, { op: 'read', chunk: CHUNK, server: 'ee'.repeat(16), now }), {
      code: 'SEDFS_ERR_TICKET_MISMATCH',
    });
    assert.throws(() => verify(PINNED, { op: 'read', chunk: CHUNK, server: SERVER, now: EXP }), {
      code: 'SEDFS_ERR_TICKET_EXPIRED',
      status: 401,
    });
  });

  test('a whole-server ticket names no chunks, and chunk and whole-server tickets never stand in for each other', () => {
    const inventory = signer.sign({ op: 'inventory', chunks: [], servers: [SERVER], exp: EXP });
    assert.equal(verify(inventory, { op: 'inventory', server: SERVER, now }).op, 'inventory');
    assert.throws(() => verify(inventory, { op: 'scrub', server: SERVER, now }), {
      code: 'SEDFS_ERR_TICKET_MISMATCH',
    });
    const withChunk = signer.sign({ op: 'inventory', chunks: [CHUNK], servers: [SERVER], exp: EXP });
    assert.throws(() => verify(withChunk, { op: 'inventory', server: SERVER, now }), {
      code: 'SEDFS_ERR_TICKET_MISMATCH',
    });
    const noChunks = signer.sign({ op: 'read', chunks: [], servers: [SERVER], exp: EXP });
    assert.throws(() => verify(noChunks, { op: 'read', chunk: CHUNK, server: SERVER, now }), {
      code: 'SEDFS_ERR_TICKET_MISMATCH',
    });
  });

  test('a ticket from another key, an altered payload, garbage or nothing is refused', () => {
    const forged = ticketSigner(generateTicketKeyPem()).sign({
      op: 'read',
      chunks: [CHUNK],
      servers: [SERVER],
      exp: EXP,
    });
    const check = { op: 'read' as const, chunk: CHUNK, server: SERVER, now };
    assert.throws(() => verify(forged, check), { code: 'SEDFS_ERR_TICKET_INVALID' });
    const [body, sig] = PINNED.split('.') as [string, string];
    const altered = `${body.slice(0, -2)}fQ.${sig}`;
    assert.throws(() => verify(altered, check), { code: 'SEDFS_ERR_TICKET_INVALID' });
    for (const junk of ['', 'no-dot', '.', 'a.b', `${body}.${'A'.repeat(86)}`, 'x'.repeat(9000)]) {
      assert.throws(
        () => verify(junk, check),
        (err: { code?: string }) =>
          err.code === 'SEDFS_ERR_TICKET_MISSING' || err.code === 'SEDFS_ERR_TICKET_INVALID',
      );
    }
    assert.throws(() => verify(undefined, check), { code: 'SEDFS_ERR_TICKET_MISSING' });
  });

  test('a write ticket whose URL list does not match its servers is malformed', () => {
    const t = signer.sign({
      op: 'write',
      chunks: [CHUNK],
      servers: [SERVER],
      urls: ['http://a', 'http://b'],
      upload: UPLOAD,
      exp: EXP,
    });
    assert.throws(() => verify(t, { op: 'write', chunk: CHUNK, server: SERVER, now }), {
      code: 'SEDFS_ERR_TICKET_INVALID',
    });
  });

  test('a write ticket names the upload its receipts are for: one without it, or with a malformed one, is refused', () => {
    const write = { op: 'write' as const, chunks: [CHUNK], servers: [SERVER], urls: ['http://a'], exp: EXP };
    const check = { op: 'write' as const, chunk: CHUNK, server: SERVER, now };
    assert.equal(uploadOf(verify(signer.sign({ ...write, upload: UPLOAD }), check)), UPLOAD);
    for (const t of [signer.sign(write), signer.sign({ ...write, upload: 'UPLOAD' })])
      assert.throws(() => verify(t, check), { code: 'SEDFS_ERR_TICKET_INVALID' });
  });
});

describe('storage receipts', () => {
  const KEY = 'a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U';

  test('a receipt is the pinned HMAC of server, chunk, size and upload', () => {
    assert.equal(
      receiptFor(KEY, SERVER, CHUNK, 42, UPLOAD),
      '0e3fd5122752bf007c8e03a3d4dea8c8961c19952155e29e814e8b032e84620a',
    );
  });

  test('it is valid only for that server, chunk, size, upload and key', () => {
    const r = receiptFor(KEY, SERVER, CHUNK, 42, UPLOAD);
    assert.ok(receiptValid(KEY, SERVER, CHUNK, 42, UPLOAD, r));
    assert.ok(!receiptValid(KEY, SERVER, CHUNK, 43, UPLOAD, r));
    assert.ok(!receiptValid(KEY, 'ee'.repeat(16), CHUNK, 42, UPLOAD, r));
    assert.ok(!receiptValid(KEY, SERVER, 'ef'.repeat(32), 42, UPLOAD, r));
    assert.ok(!receiptValid(KEY, SERVER, CHUNK, 42, '34'.repeat(16), r), 'another upload');
    assert.ok(!receiptValid('b3RoZXJrZXlvdGhlcmtleW90aGVya2V5b3RoZXJrZXk', SERVER, CHUNK, 42, UPLOAD, r));
  });
});
