import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { CLI, runSedfs, TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let work: string;
const as = (user: string) => ({
  SEDFS_HOME: join(work, user),
  SEDFS_MAIN: cluster.mainUrl,
  SEDFS_PASSPHRASE: `${user}-pw`,
});
const run = (user: string, ...args: string[]) => runSedfs(args, as(user));

type Pins = Record<string, { fingerprint: string }>;
/** `user`'s pins of the one cluster here, as read, after `change` (if any) is written back. */
function editPins(user: string, change: (pins: Pins) => void = () => undefined): Pins {
  const path = join(work, user, 'pins.json');
  const file = JSON.parse(readFileSync(path, 'utf8')) as { byCluster: Record<string, Pins> };
  const clusters = Object.values(file.byCluster);
  assert.equal(clusters.length, 1, 'pins of one cluster');
  const pins = clusters[0] as Pins;
  const before = structuredClone(pins);
  change(pins);
  writeFileSync(path, JSON.stringify(file));
  return before;
}

before(async () => {
  cluster = await TestCluster.start({ servers: 2, replicas: 2 });
  work = mkdtempSync(join(tmpdir(), 'sedfs-cli-share-'));
  for (const u of ['alice', 'bob', 'carol']) assert.equal((await run(u, 'signup', u)).code, 0);
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

  const view = (await run('bob', 'ls', '/shared')).stdout;
  assert.match(view, /alice\//);
  // A folder made up for the view has no time of its own: none shown, not 1970.
  assert.match(view, /^alice\/\s+folder\s+-\s+-$/m);
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

test('unshare is not held up by locks inside; the other writers keep theirs, and the revoked user loses the ones where they can no longer write', async () => {
  assert.equal((await run('alice', 'mkdir', '/proj')).code, 0);
  for (const f of ['a', 'b']) assert.equal((await run('alice', 'write', `/proj/${f}.txt`, f)).code, 0);
  assert.equal((await run('alice', 'mkdir', '/proj/sub')).code, 0);
  assert.equal((await run('alice', 'write', '/proj/sub/c.txt', 'c')).code, 0);
  for (const u of ['bob', 'carol'])
    assert.equal((await run('alice', 'share', '/proj', u, '--write')).code, 0);
  // Carol can also write in /proj/sub on her own grant, which the unshare of /proj keeps.
  assert.equal((await run('alice', 'share', '/proj/sub', 'carol', '--write')).code, 0);
  assert.equal((await run('bob', 'lock', '/shared/alice/proj/a.txt')).code, 0);
  assert.equal((await run('carol', 'lock', '/shared/alice/proj/b.txt')).code, 0);
  assert.equal((await run('carol', 'lock', '/shared/alice/sub/c.txt')).code, 0);

  const un = await run('alice', 'unshare', '/proj', 'carol');
  assert.equal(un.code, 0, un.stderr);

  // Bob's lock holds, and his write under it lands under the new keys.
  const blocked = await run('alice', 'write', '/proj/a.txt', 'alice was here');
  assert.notEqual(blocked.code, 0);
  assert.match(blocked.stderr, /^sedfs: locked by bob until \d{4}-/);
  const bobs = await run('bob', 'write', '/shared/alice/proj/a.txt', 'bob was here');
  assert.equal(bobs.code, 0, bobs.stderr);
  assert.equal((await run('alice', 'cat', '/proj/a.txt')).stdout, 'bob was here\n');
  // Carol's lock on b.txt went with her access: Bob, who cannot unlock it, can write.
  const freed = await run('bob', 'write', '/shared/alice/proj/b.txt', 'bob again');
  assert.equal(freed.code, 0, freed.stderr);
  assert.equal((await run('alice', 'cat', '/proj/b.txt')).stdout, 'bob again\n');
  // Where she can still write, her lock stays.
  const kept = await run('bob', 'write', '/shared/alice/proj/sub/c.txt', 'bob');
  assert.notEqual(kept.code, 0);
  assert.match(kept.stderr, /^sedfs: locked by carol until \d{4}-/);
});

test('an unshare whose key rotation did not finish: the user stays refused, the owner is told why a change waits and how to finish it, and unshare --finish does', async () => {
  assert.equal((await run('alice', 'mkdir', '/half')).code, 0);
  assert.equal((await run('alice', 'write', '/half/a.txt', 'a')).code, 0);
  assert.equal((await run('alice', 'share', '/half', 'bob', '--write')).code, 0);
  // The revocation alone, as an unshare whose client was lost right after it leaves it.
  const session = JSON.parse(readFileSync(join(work, 'alice', 'session.json'), 'utf8')) as { token: string };
  const call = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    const res = await request(`${cluster.mainUrl}${path}`, {
      dispatcher: cluster.agent,
      method,
      headers: { authorization: `Bearer ${session.token}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return (await res.body.json()) as Record<string, unknown>;
  };
  const listed = JSON.parse((await run('alice', 'ls', '/', '--json')).stdout) as {
    entries: { name: string; id: string }[];
  };
  const half = listed.entries.find((e) => e.name === 'half')?.id;
  const bob = (await call('GET', '/v1/users/bob')).id;
  assert.deepEqual(await call('POST', `/v1/nodes/${half}/unshare`, { grantee: bob }), {
    rotation: half,
    sharesInside: 0,
  });

  const refused = await run('bob', 'cat', '/shared/alice/half/a.txt');
  assert.notEqual(refused.code, 0);
  const waits = await run('alice', 'write', '/half/a.txt', 'b');
  assert.notEqual(waits.code, 0);
  assert.match(
    waits.stderr,
    /^sedfs: an unshare is replacing the keys here; changes wait until it is done \(if it was cut short, its owner finishes it with: sedfs unshare --finish\)/,
  );
  const finished = await run('alice', 'unshare', '--finish');
  assert.equal(finished.code, 0, finished.stderr);
  assert.equal(finished.stdout, 'replaced the 2 keys under /half\n');
  assert.equal((await run('alice', 'unshare', '--finish')).stdout, 'no unshare left replacing keys\n');
  assert.equal((await run('alice', 'write', '/half/a.txt', 'b')).code, 0);
  assert.equal((await run('alice', 'cat', '/half/a.txt')).stdout, 'b\n');
});

test('unshare stops before sealing the new keys to a grantee whose key is not the one pinned, and finishes once told --accept-new-key USER', async () => {
  assert.equal((await run('alice', 'mkdir', '/pinned/in', '-p')).code, 0);
  assert.equal((await run('alice', 'share', '/pinned', 'bob', '--read')).code, 0);
  assert.equal((await run('alice', 'share', '/pinned/in', 'carol', '--read')).code, 0);
  // As if carol's key had changed since alice pinned it (or main gave another one).
  const real = editPins('alice', (pins) => {
    (pins.carol as { fingerprint: string }).fingerprint = '0000:0000:0000:0000:0000:0000:0000:0000';
  }).carol?.fingerprint;

  const stopped = await run('alice', 'unshare', '/pinned', 'bob');
  assert.notEqual(stopped.code, 0);
  assert.match(
    stopped.stderr,
    /^sedfs: bob's access to \/pinned is revoked, but replacing the keys did not finish, and main refuses changes there until it does: WARNING: carol's key changed from 0000:0000:0000:0000:0000:0000:0000:0000 to [0-9a-f:]+\. If carol really made a new key, finish with: sedfs unshare --finish --accept-new-key carol;/,
  );
  assert.notEqual((await run('alice', 'unshare', '--finish')).code, 0);
  const finished = await run('alice', 'unshare', '--finish', '--accept-new-key', 'carol');
  assert.equal(finished.code, 0, finished.stderr);
  assert.equal(finished.stdout, 'replaced the 2 keys under /pinned\n');
  assert.equal(editPins('alice').carol?.fingerprint, real);
  // A grantee not pinned yet is pinned as first seen, and the owner is told.
  assert.equal((await run('alice', 'share', '/pinned', 'bob', '--read')).code, 0);
  editPins('alice', (pins) => {
    delete pins.carol;
  });
  const told = await run('alice', 'unshare', '/pinned', 'bob');
  assert.equal(told.code, 0, told.stderr);
  assert.equal(
    told.stderr,
    `sedfs: note: pinned carol's key: fingerprint ${real} (they keep a share under /pinned)\n`,
  );
});

test('an edit saves over the version it read when an unshare replaced the keys while the editor was open', async () => {
  assert.equal((await run('alice', 'mkdir', '/ed')).code, 0);
  assert.equal((await run('alice', 'write', '/ed/notes.txt', 'draft')).code, 0);
  for (const u of ['bob', 'carol']) assert.equal((await run('alice', 'share', '/ed', u, '--write')).code, 0);
  // While bob's editor is open, alice revokes carol: every key under /ed is replaced.
  const editor = join(work, 'edit-across-unshare.sh');
  const alice = Object.entries(as('alice'))
    .map(([k, v]) => `${k}='${v}'`)
    .join(' ');
  writeFileSync(
    editor,
    `${alice} "${process.execPath}" "${CLI}" unshare /ed carol\nprintf 'edited' > "$1"\n`,
  );
  const res = await runSedfs(['edit', '/shared/alice/ed/notes.txt'], {
    ...as('bob'),
    EDITOR: `sh ${editor}`,
  });
  assert.equal(res.code, 0, res.stderr);
  assert.equal((await run('alice', 'cat', '/ed/notes.txt')).stdout, 'edited');
});

test("a share from a user whose pinned key changed is left out with a warning saying how to accept the new key; sedfs pin shows, pins and replaces a user's key", async () => {
  assert.equal((await run('alice', 'mkdir', '/signed')).code, 0);
  assert.equal((await run('alice', 'write', '/signed/a.txt', 'signed by alice')).code, 0);
  // dave is new here: he has pinned no one.
  assert.equal((await run('dave', 'signup', 'dave')).code, 0);
  assert.equal((await run('alice', 'share', '/signed', 'dave', '--read')).code, 0);
  const aliceFp = JSON.parse((await run('alice', '--json', 'whoami')).stdout).fingerprint as string;

  // The first share listing pins its owner's key, and says so.
  const first = await run('dave', 'ls', '/shared/alice');
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^signed\/\s/m);
  assert.equal(
    first.stderr,
    `sedfs: note: pinned alice's key, who shares with you: fingerprint ${aliceFp} (compare it with what alice's sedfs whoami prints)\n`,
  );
  assert.match(
    (await run('dave', 'pin', 'alice')).stdout,
    new RegExp(`^alice's key fingerprint ${aliceFp} \\(pinned since \\d{4}-`),
  );
  const carolPin = await run('dave', '--json', 'pin', 'carol');
  assert.equal(carolPin.code, 0, carolPin.stderr);
  assert.equal(JSON.parse(carolPin.stdout).newlyPinned, true);
  const carolFp = JSON.parse(carolPin.stdout).fingerprint as string;
  const listed = await run('dave', 'pin');
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(
    listed.stdout,
    new RegExp(`^alice  ${aliceFp}  pinned \\d{4}-.*\ncarol  ${carolFp}  pinned \\d{4}-.*\n$`),
  );

  // As if alice's key had changed since dave pinned it (or main gave another one).
  const zeros = '0000:0000:0000:0000:0000:0000:0000:0000';
  editPins('dave', (pins) => {
    (pins.alice as { fingerprint: string }).fingerprint = zeros;
  });
  const changed = await run('dave', 'ls', '/shared');
  assert.equal(changed.code, 0, changed.stderr);
  assert.doesNotMatch(changed.stdout, /alice/);
  assert.equal(
    changed.stderr,
    `sedfs: warning: a share from alice was left out: WARNING: alice's key changed from ${zeros} to ${aliceFp}. If alice really made a new key, accept it with: sedfs pin alice --accept-new-key; otherwise someone may be impersonating them.\n`,
  );
  const refused = await run('dave', 'pin', 'alice');
  assert.notEqual(refused.code, 0);
  assert.match(
    refused.stderr,
    /alice's key changed from 0000:.*accept it with: sedfs pin alice --accept-new-key;/,
  );

  const accepted = await run('dave', 'pin', 'alice', '--accept-new-key');
  assert.equal(accepted.code, 0, accepted.stderr);
  assert.equal(accepted.stdout, `alice's key fingerprint ${aliceFp} (pinned now in place of ${zeros})\n`);
  assert.equal((await run('dave', 'cat', '/shared/alice/signed/a.txt')).stdout, 'signed by alice\n');
});
