import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { randomHexId } from '../../../src/crypto/hash.js';
import { generateIdentity, signMessage } from '../../../src/crypto/identity.js';
import { AccountService } from '../../../src/main-server/accounts.js';
import { AuditLog } from '../../../src/main-server/audit.js';
import { SqliteNamespaceStore } from '../../../src/main-server/store/sqlite-namespace-store.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';
import { loginMessage, signupMessage } from '../../../src/protocol/account-messages.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-accounts-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** this cluster's CA fingerprint */
const CA = 'c'.repeat(64);

let n = 0;
/** Accounts on a fresh store with a clock the test moves, and alice signed up. */
function accountsWithAlice() {
  const store = new SqliteStore(join(dir, `a${n}.db`));
  const clock = { now: 1_000_000 };
  const accounts = new AccountService(
    new SqliteNamespaceStore(store.db),
    pino({ level: 'silent' }),
    new AuditLog(join(dir, `audit${n++}.log`), () => clock.now),
    () => clock.now,
    {
      caFingerprint: CA,
      openSignup: true,
      sessionTtlMs: 3600_000,
      inviteTtlMs: 3600_000,
    },
  );
  const alice = generateIdentity();
  accounts.signup({
    name: 'alice',
    signKey: alice.signKey,
    boxKey: alice.boxKey,
    signature: signMessage(alice, Buffer.from(signupMessage('alice', alice.signKey, alice.boxKey))),
    rootId: randomHexId(),
    rootSealed: 'sealed',
  });
  const login = (challenge: string, clusterCa = CA) =>
    accounts.login({
      name: 'alice',
      challenge,
      signature: signMessage(alice, Buffer.from(loginMessage('alice', challenge, clusterCa))),
    });
  return { store, clock, accounts, login };
}

test("a flood of login challenges for other names never invalidates a user's pending challenge", () => {
  const { store, accounts, login } = accountsWithAlice();
  const { challenge } = accounts.challenge('alice');
  // More than main used to keep before it threw every pending challenge away.
  for (let i = 0; i < 12_000; i++) accounts.challenge(`flood${i}`);
  assert.equal(login(challenge).user.name, 'alice');
  store.close();
});

test("asking for challenges costs main nothing kept: a flood for alice's own name does not void hers either", () => {
  const { store, accounts, login } = accountsWithAlice();
  const { challenge } = accounts.challenge('alice');
  for (let i = 0; i < 1000; i++) accounts.challenge('alice');
  assert.equal(login(challenge).user.name, 'alice');
  store.close();
});

test('a challenge works once, only for the name it was made for, spelled as it was made, and not after it expires', () => {
  const { store, clock, accounts, login } = accountsWithAlice();
  const first = accounts.challenge('alice').challenge;
  assert.equal(login(first).user.name, 'alice');
  assert.throws(() => login(first), { code: 'SEDFS_ERR_LOGIN_FAILED' }, 'used once');
  // Another spelling of the same bytes (base64url's spare bits in the last character).
  const last = first.at(-1) as string;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const respelled = first.slice(0, -1) + alphabet[alphabet.indexOf(last) ^ 1];
  assert.deepEqual(Buffer.from(respelled, 'base64url'), Buffer.from(first, 'base64url'));
  assert.throws(() => login(respelled), { code: 'SEDFS_ERR_LOGIN_FAILED' }, 'nor spelled otherwise');
  assert.throws(
    () => login(accounts.challenge('bob').challenge),
    { code: 'SEDFS_ERR_LOGIN_FAILED' },
    "bob's",
  );
  const late = accounts.challenge('alice').challenge;
  clock.now += 60_001;
  assert.throws(() => login(late), { code: 'SEDFS_ERR_LOGIN_FAILED' }, 'expired');
  assert.equal(login(accounts.challenge('alice').challenge).user.name, 'alice');
  store.close();
});

test('a login signed for another cluster is refused: a server that relays our challenge to a user cannot log in as them', () => {
  const { store, accounts, login } = accountsWithAlice();
  const { challenge } = accounts.challenge('alice');
  // What alice's client signs when the main it talks to (the relay) shows another CA.
  assert.throws(() => login(challenge, 'e'.repeat(64)), { code: 'SEDFS_ERR_LOGIN_FAILED' });
  assert.equal(login(challenge).user.name, 'alice', 'the same challenge, signed for this cluster');
  store.close();
});

test('a user name Windows keeps for a device (con, nul, com1…) is refused at signup: its key file could not be made there', () => {
  const { store, accounts } = accountsWithAlice();
  for (const name of ['con', 'nul.txt', 'com1', 'lpt9']) {
    const id = generateIdentity();
    assert.throws(
      () =>
        accounts.signup({
          name,
          signKey: id.signKey,
          boxKey: id.boxKey,
          signature: signMessage(id, Buffer.from(signupMessage(name, id.signKey, id.boxKey))),
          rootId: randomHexId(),
          rootSealed: 'sealed',
        }),
      { code: 'SEDFS_ERR_BAD_REQUEST' },
      name,
    );
  }
  store.close();
});
