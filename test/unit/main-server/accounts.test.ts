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

let n = 0;
/** Accounts on a fresh store with a clock the test moves, and alice signed up. */
function accountsWithAlice(maxPendingChallenges?: number) {
  const store = new SqliteStore(join(dir, `a${n}.db`));
  const clock = { now: 1_000_000 };
  const accounts = new AccountService(
    new SqliteNamespaceStore(store.db),
    pino({ level: 'silent' }),
    new AuditLog(join(dir, `audit${n++}.log`), () => clock.now),
    () => clock.now,
    {
      openSignup: true,
      sessionTtlMs: 3600_000,
      inviteTtlMs: 3600_000,
      ...(maxPendingChallenges ? { maxPendingChallenges } : {}),
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
  const login = (challenge: string) =>
    accounts.login({
      name: 'alice',
      challenge,
      signature: signMessage(alice, Buffer.from(loginMessage('alice', challenge))),
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

test('past the cap on pending challenges new ones are refused (429) until old ones expire; pending ones still work', () => {
  const { store, clock, accounts, login } = accountsWithAlice(100);
  const { challenge } = accounts.challenge('alice');
  for (let i = 0; i < 99; i++) accounts.challenge(`flood${i}`);
  assert.throws(() => accounts.challenge('mallory'), { code: 'SEDFS_ERR_BUSY', status: 429 });
  clock.now += 10_000;
  assert.equal(login(challenge).user.name, 'alice');
  clock.now += 60_000; // the flood's challenges expired
  assert.equal(login(accounts.challenge('alice').challenge).user.name, 'alice');
  store.close();
});

test("one name keeps a few pending challenges, dropping its oldest; asking for one name's never fills the cap", () => {
  const { store, accounts, login } = accountsWithAlice(10);
  const first = accounts.challenge('alice').challenge;
  const recent = [1, 2, 3, 4].map(() => accounts.challenge('alice').challenge);
  assert.throws(() => login(first), { code: 'SEDFS_ERR_LOGIN_FAILED' });
  for (let i = 0; i < 100; i++) accounts.challenge('bob');
  assert.equal(login(recent[3] as string).user.name, 'alice');
  assert.equal(login(recent[0] as string).user.name, 'alice');
  assert.throws(() => login(recent[0] as string), { code: 'SEDFS_ERR_LOGIN_FAILED' }, 'used once');
  store.close();
});
