import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import { peerName, peerRenewalDue } from '../../../src/common/tls.js';

/** A request on a TLS connection whose verified peer certificate is valid from `from` to `to` (ms since epoch). */
function requestFrom(cn: string, from: number, to: number, authorized = true): IncomingMessage {
  const socket = {
    authorized,
    getPeerCertificate: () => ({
      subject: { CN: cn },
      valid_from: new Date(from).toUTCString(),
      valid_to: new Date(to).toUTCString(),
    }),
  };
  return { socket } as unknown as IncomingMessage;
}

describe('the peer certificate of a connection', () => {
  const now = Date.now();
  const minute = 60_000;

  test('names its peer while the certificate is valid, and no longer once it has expired on a kept connection', async () => {
    // One connection whose certificate runs out while it is kept: the handshake checked
    // the dates once, and the first answer is remembered for the connection.
    const kept = requestFrom('abc', now - minute, Date.now() + 1500);
    assert.equal(peerName(kept), 'abc');
    await new Promise((r) => setTimeout(r, 2100));
    assert.equal(peerName(kept), undefined);
  });

  test('names nobody when the chain did not verify, or once the connection is gone', () => {
    assert.equal(peerName(requestFrom('abc', now - minute, now + minute, false)), undefined);
    const gone = { socket: null } as unknown as IncomingMessage;
    assert.equal(peerName(gone), undefined);
    assert.equal(peerRenewalDue(gone), false);
  });

  test('is due for renewal in the last third of its life, not before', () => {
    assert.equal(peerRenewalDue(requestFrom('abc', now - minute, now + 5 * minute)), false);
    assert.equal(peerRenewalDue(requestFrom('abc', now - 5 * minute, now + minute)), true);
    assert.equal(peerRenewalDue(requestFrom('abc', now - 5 * minute, now + minute, false)), false);
  });
});
