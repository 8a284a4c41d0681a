import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runSedfs, TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let work: string;
const as = (user: string) => ({
  SEDFS_HOME: join(work, user),
  SEDFS_MAIN: cluster.mainUrl,
  SEDFS_PASSPHRASE: `${user}-pw`,
});
const run = (user: string, ...args: string[]) => runSedfs(args, as(user));

before(async () => {
  cluster = await TestCluster.start({ servers: 2, replicas: 2 });
  work = mkdtempSync(join(tmpdir(), 'sedfs-cli-share-'));
  for (const u of ['alice', 'bob']) assert.equal((await run(u, 'signup', u)).code, 0);
});
after(async () => {
  await cluster?.stop();
  rmSync(work, { recursive: true, force: true });
});

test('share, the /shared view, perms, lock and unshare through the CLI', async () => {
  assert.equal((await run('alice', 'mkdir', '/docs')).code, 0);
  assert.equal((await run('alice', 'write', '/docs/plan.txt', 'step one')).code, 0);

  const shared = await run('alice', 'share', '/docs', 'bob', '--write');
  assert.equal(shared.code, 0, shared.stderr);
  assert.match(shared.stdout, /pinned bob's key: fingerprint ([0-9a-f]{4}:){7}[0-9a-f]{4}/);
  assert.doesNotMatch((await run('alice', 'share', '/docs', 'bob', '--write')).stdout, /pinned/);

  assert.match((await run('bob', 'ls', '/shared')).stdout, /alice\//);
  assert.equal((await run('bob', 'cat', '/shared/alice/docs/plan.txt')).stdout, 'step one\n');
  assert.equal((await run('bob', 'write', '/shared/alice/docs/plan.txt', 'step two', '--append')).code, 0);
  assert.equal((await run('alice', 'cat', '/docs/plan.txt')).stdout, 'step one\nstep two\n');

  const perms = JSON.parse((await run('bob', 'perms', '/shared/alice/docs/plan.txt', '--json')).stdout);
  assert.equal(perms.owner, 'alice');
  assert.equal(perms.you, 'write');
  assert.deepEqual(perms.grants, [
    { user: 'bob', perm: 'write', from: '/shared/alice/docs', inherited: true },
  ]);
  assert.match((await run('alice', 'perms', '/docs')).stdout, /bob\s+write\s+on this path/);

  assert.equal((await run('alice', 'lock', '/docs/plan.txt')).code, 0);
  const blocked = await run('bob', 'write', '/shared/alice/docs/plan.txt', 'step three');
  assert.notEqual(blocked.code, 0);
  assert.match(blocked.stderr, /^sedfs: locked by alice until \d{4}-/);
  assert.equal((await run('alice', 'unlock', '/docs/plan.txt')).code, 0);

  const un = await run('alice', 'unshare', '/docs', 'bob');
  assert.equal(un.code, 0, un.stderr);
  assert.match(un.stdout, /2 keys replaced/);
  const refused = await run('bob', 'cat', '/shared/alice/docs/plan.txt');
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /no such (file or )?folder/);
  assert.equal((await run('alice', 'cat', '/docs/plan.txt')).stdout, 'step one\nstep two\n');
});
