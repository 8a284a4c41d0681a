import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { runSedfs, TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let work: string;
const as = (profile: string, user: string) => ({
  SEDFS_HOME: join(work, profile),
  SEDFS_MAIN: cluster.mainUrl,
  SEDFS_PASSPHRASE: `${user}-pw`,
});
const run = (user: string, ...args: string[]) => runSedfs(args, as(user, user));

before(async () => {
  cluster = await TestCluster.start({ servers: 1, replicas: 1 });
  work = mkdtempSync(join(tmpdir(), 'sedfs-share-dates-'));
  for (const u of ['alice', 'bob', 'carol']) assert.equal((await run(u, 'signup', u)).code, 0);
});
after(async () => {
  await cluster?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** The dates of the latest grants `profile`'s grants-seen.json holds, by node id (of its one cluster and user). */
function seenBy(profile: string): Record<string, number> {
  const file = JSON.parse(readFileSync(join(work, profile, 'grants-seen.json'), 'utf8')) as {
    byCluster: Record<string, Record<string, Record<string, number>>>;
  };
  const byUser = Object.values(file.byCluster);
  assert.equal(byUser.length, 1, 'one cluster');
  const byShare = Object.values(byUser[0] as Record<string, Record<string, number>>);
  assert.equal(byShare.length, 1, 'one user');
  return Object.fromEntries(
    Object.entries(byShare[0] as Record<string, number>).map(([share, at]) => [share.split(':')[1], at]),
  );
}

interface GrantRow {
  node_id: string;
  grantee_id: string;
  sealed_key: string;
  sealed_name: string;
  signature: string;
  signed_at: number;
}

test("a grant older than one an earlier command saw is left out by the next, from what the profile keeps on disk: main cannot hand back, between two commands, the grant an unshare's rotation replaced", async () => {
  assert.equal((await run('alice', 'mkdir', '/rolled')).code, 0);
  assert.equal((await run('alice', 'write', '/rolled/doc.txt', 'for bob')).code, 0);
  for (const u of ['bob', 'carol'])
    assert.equal((await run('alice', 'share', '/rolled', u, '--read')).code, 0);
  const db = new Database(join(cluster.mainData, 'main.db'));
  try {
    const bob = (db.prepare('SELECT id FROM users WHERE name = ?').get('bob') as { id: string }).id;
    const bobsGrant = () => db.prepare('SELECT * FROM grants WHERE grantee_id = ?').get(bob) as GrantRow;
    const replaced = bobsGrant();
    const un = await run('alice', 'unshare', '/rolled', 'carol');
    assert.equal(un.code, 0, un.stderr);
    const latest = bobsGrant();
    assert.ok(latest.signed_at > replaced.signed_at, 'the rotation dated the new grant after it');

    // One command sees the new grant; the profile keeps its date.
    const first = await run('bob', 'cat', '/shared/alice/rolled/doc.txt');
    assert.equal(first.stdout, 'for bob\n', first.stderr);
    assert.deepEqual(seenBy('bob'), { [latest.node_id]: latest.signed_at });

    // Main, turned hostile (or put back from a backup), hands back the grant from before,
    // signed by alice as it was.
    const put = db.prepare(
      'UPDATE grants SET sealed_key = @sealed_key, sealed_name = @sealed_name, signature = @signature, signed_at = @signed_at WHERE node_id = @node_id AND grantee_id = @grantee_id',
    );
    put.run(replaced);
    try {
      const next = await run('bob', 'ls', '/shared');
      assert.equal(next.code, 0, next.stderr);
      assert.doesNotMatch(next.stdout, /alice/);
      const iso = (ms: number) => new Date(ms).toISOString();
      assert.match(
        next.stderr,
        new RegExp(
          `^sedfs: warning: a share from alice was left out: main shows a grant of it signed at ${iso(replaced.signed_at)}, older than one seen here \\(signed at ${iso(latest.signed_at)}\\): main may be handing back keys an unshare replaced\\.`,
        ),
      );
      assert.notEqual((await run('bob', 'cat', '/shared/alice/rolled/doc.txt')).code, 0);

      // Bob's keys in a profile that never saw the new grant take the old one: what held
      // it back was the record on disk, not the grant itself.
      cpSync(join(work, 'bob'), join(work, 'bob-elsewhere'), { recursive: true });
      rmSync(join(work, 'bob-elsewhere', 'grants-seen.json'));
      const elsewhere = await runSedfs(['ls', '/shared/alice'], as('bob-elsewhere', 'bob'));
      assert.equal(elsewhere.code, 0, elsewhere.stderr);
      assert.match(elsewhere.stdout, /^rolled\/\s/m);
    } finally {
      put.run(latest);
    }
    assert.equal((await run('bob', 'cat', '/shared/alice/rolled/doc.txt')).stdout, 'for bob\n');
  } finally {
    db.close();
  }
});
