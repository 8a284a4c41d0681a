import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fetchBlob } from '../../src/client/fetch-blob.js';
import { storeBlob } from '../../src/client/store-blob.js';
import type { CheckResponse } from '../../src/protocol/main-api.js';
import { runSedfs, TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { hashingSink } from '../helpers/sinks.js';

let cluster: TestCluster;
before(async () => {
  // A long silence allowance: the dead server stays "up" to main and keeps being placed.
  cluster = await TestCluster.start({ servers: 3, replicas: 3, heartbeatTimeout: 30 });
  await cluster.killFileServer(1);
});
after(() => cluster?.stop());

test('with one server of every chain dead, each chunk still lands on the other two, wherever the dead one sits; main, with no other to offer, is asked for one only a few times', async () => {
  const client = await cluster.client();
  const data = seededBytes(77, 40 * 64 * 1024);
  const res = await storeBlob(client, [data], { chunkBytes: 64 * 1024, replicas: 3 });
  assert.equal(res.chunks, 40);
  // The commit recorded exactly which replicas exist: every chunk is short of the dead one.
  assert.equal(res.underReplicated, 40);
  const manifest = await client.manifest(res.blobId);
  for (const c of manifest.chunks) {
    assert.ok(existsSync(cluster.chunkPath(0, c.id)), `chunk ${c.index} on server 0`);
    assert.ok(existsSync(cluster.chunkPath(2, c.id)), `chunk ${c.index} on server 2`);
    assert.ok(!existsSync(cluster.chunkPath(1, c.id)));
  }
  const out = hashingSink();
  await fetchBlob(client, res.blobId, out.sink);
  assert.equal(out.bytes(), data.length);
  assert.equal(out.digest(), createHash('sha256').update(data).digest('hex'));
  // The first ask was answered before any other leaving out the same servers was made.
  const refusals = () =>
    readFileSync(join(cluster.mainData, 'main.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"SEDFS_ERR_NO_SERVERS"'))
      .map((l) => JSON.parse(l) as { level: number; msg: string });
  await waitFor('main to log its refusal', () => refusals().length > 0);
  // Lines still being written would show within this.
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(refusals().length, 1, 'main was asked once for another server');
  assert.deepEqual(
    refusals().map((l) => [l.level, l.msg]),
    [[40, 'request refused']],
    'a warning, not an error',
  );
});

test('a put or put -r that could store fewer copies than wanted says so, and still succeeds', async () => {
  const work = mkdtempSync(join(tmpdir(), 'sedfs-short-'));
  try {
    const env = {
      SEDFS_HOME: join(work, 'cy'),
      SEDFS_MAIN: cluster.mainUrl,
      SEDFS_PASSPHRASE: 'cy-passphrase',
    };
    const signup = await runSedfs(['signup', 'cy'], env);
    assert.equal(signup.code, 0, signup.stderr);
    writeFileSync(join(work, 'one.bin'), seededBytes(301, 3 * 1024 * 1024));
    const put = await runSedfs(['put', join(work, 'one.bin'), '/one.bin'], env);
    assert.equal(put.code, 0, put.stderr);
    assert.match(
      put.stderr,
      /sedfs: warning: \/one\.bin: 1 of its 1 chunk\(s\) stored on fewer file servers than the 3 wanted; main's repair makes up the copies once servers allow \(sedfs check shows its queue\)/,
    );
    mkdirSync(join(work, 'small'));
    for (let i = 0; i < 5; i++) writeFileSync(join(work, 'small', `s${i}.txt`), seededBytes(310 + i, 1000));
    const many = await runSedfs(['put', '-r', join(work, 'small'), '/small'], env);
    assert.equal(many.code, 0, many.stderr);
    assert.match(
      many.stderr,
      /sedfs: warning: \/small: 5 file\(s\) stored on fewer file servers than the 3 wanted; main's repair makes up the copies once servers allow \(sedfs check shows its queue\)/,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

describe('a chain server that is down while main still counts it up, with another server to spare', () => {
  let spare: TestCluster;
  let work: string;
  before(async () => {
    spare = await TestCluster.start({ servers: 4, replicas: 3, heartbeatTimeout: 30 });
    work = mkdtempSync(join(tmpdir(), 'sedfs-chain-'));
    await spare.killFileServer(1);
  });
  after(async () => {
    await spare?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('every chunk main placed on it is stored on another server instead: three copies each, none short', async () => {
    const client = await spare.client();
    const res = await storeBlob(client, [seededBytes(78, 40 * 64 * 1024)], {
      chunkBytes: 64 * 1024,
      replicas: 3,
    });
    assert.equal(res.underReplicated, 0);
    const manifest = await client.manifest(res.blobId);
    for (const c of manifest.chunks) {
      const holders = [0, 1, 2, 3].filter((i) => existsSync(spare.chunkPath(i, c.id)));
      assert.deepEqual(holders, [0, 2, 3], `chunk ${c.index}`);
    }
  });

  test('a put -r of small files (sent in batches) and a bigger one leaves nothing under-replicated', async () => {
    const env = {
      SEDFS_HOME: join(work, 'amy'),
      SEDFS_MAIN: spare.mainUrl,
      SEDFS_PASSPHRASE: 'amy-passphrase',
    };
    const signup = await runSedfs(['signup', 'amy'], env);
    assert.equal(signup.code, 0, signup.stderr);
    const dir = join(work, 'files');
    mkdirSync(dir);
    for (let i = 0; i < 30; i++) writeFileSync(join(dir, `f${i}.txt`), seededBytes(100 + i, 4096));
    writeFileSync(join(dir, 'big.bin'), seededBytes(99, 3 * 1024 * 1024));
    const before = await (await spare.client()).call<CheckResponse>('GET', '/v1/check');
    const put = await runSedfs(['put', '-r', dir, '/files'], env);
    assert.equal(put.code, 0, put.stderr);
    const check = await (await spare.client()).call<CheckResponse>('GET', '/v1/check');
    assert.equal(check.underReplicated, 0);
    assert.ok(check.chunks >= before.chunks + 31, `${check.chunks} chunks after, ${before.chunks} before`);
  });
});

describe('a file server that hangs (stopped, its connections left open) while main still counts it up', () => {
  let hung: TestCluster;
  let work: string;
  let env: Record<string, string>;
  /** a blob stored while all answered, and the server its first chunk is read from first: the one that hangs */
  const blob = seededBytes(201, 24 * 1024 * 1024);
  let blobId: string;
  let hungId: string;
  before(async () => {
    hung = await TestCluster.start({ servers: 4, replicas: 3, heartbeatTimeout: 300 });
    work = mkdtempSync(join(tmpdir(), 'sedfs-hung-'));
    env = { SEDFS_HOME: join(work, 'ben'), SEDFS_MAIN: hung.mainUrl, SEDFS_PASSPHRASE: 'ben-passphrase' };
    const signup = await runSedfs(['signup', 'ben'], env);
    assert.equal(signup.code, 0, signup.stderr);
    // Written while all answer: every server has kept connections to the one that will hang.
    writeFileSync(join(work, 'before.bin'), seededBytes(200, 24 * 1024 * 1024));
    const put = await runSedfs(['put', join(work, 'before.bin'), '/before.bin'], env);
    assert.equal(put.code, 0, put.stderr);
    const admin = await hung.client();
    blobId = (await storeBlob(admin, [blob], { replicas: 3 })).blobId;
    hungId = (await admin.manifest(blobId)).chunks[0]?.replicas[0]?.id as string;
    hung.fileServers.find((f) => f.id === hungId)?.process.proc.kill('SIGSTOP');
  });
  after(async () => {
    await hung?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  // Each chunk waiting out undici's 60 s took a 64 MiB put 71 s and a get 120 s: the
  // tests' time limits are well above one wait of STALL_MS and below those.
  test('a put over it finishes without waiting out a minute per chunk, says which server it worked around, and leaves every chunk with three copies', {
    timeout: 45_000,
  }, async () => {
    writeFileSync(join(work, 'after.bin'), seededBytes(202, 40 * 1024 * 1024));
    const put = await runSedfs(['put', join(work, 'after.bin'), '/after.bin'], env);
    assert.equal(put.code, 0, put.stderr);
    assert.ok(put.stderr.includes(`file server ${hungId.slice(0, 8)} is not answering`), put.stderr);
    // Main still counts the hung server: a chunk left with a copy there would be three
    // copies to it, not two. So this checks that each chunk placed there has a third copy elsewhere.
    const check = await (await hung.client()).call<CheckResponse>('GET', '/v1/check');
    assert.equal(check.underReplicated, 0);
    const got = await runSedfs(['get', '/after.bin', join(work, 'after.back')], env);
    assert.equal(got.code, 0, got.stderr);
    assert.ok(readFileSync(join(work, 'after.back')).equals(readFileSync(join(work, 'after.bin'))));
    // The next command, a process of its own, knows from the put's which server did not
    // answer: a file written while it still did, with copies there, is read from the
    // others first, with no wait on it and so nothing to say about it.
    const earlier = await runSedfs(['get', '/before.bin', join(work, 'before.back')], env);
    assert.equal(earlier.code, 0, earlier.stderr);
    assert.doesNotMatch(earlier.stderr, /is not answering/);
    assert.ok(readFileSync(join(work, 'before.back')).equals(readFileSync(join(work, 'before.bin'))));
  });

  test('a get whose first copy is on it reads every byte from the others, without waiting out a minute per chunk', {
    timeout: 45_000,
  }, async () => {
    const reader = await hung.client();
    const out = hashingSink();
    await fetchBlob(reader, blobId, out.sink);
    assert.equal(out.bytes(), blob.length);
    assert.equal(out.digest(), createHash('sha256').update(blob).digest('hex'));
    assert.ok(reader.unanswering.has(hungId), 'the hung server is remembered, and tried last');
  });

  // A scrub has no time limit (it reads all a server holds): over a connection main kept
  // to a server that then hung, `check --repair --verify` waited for ever (a new
  // connection fails at its 10 s connect timeout), and main's other orders waited out
  // undici's 60 s.
  test('check --repair --verify over a connection main kept to a server that then hung finishes, naming it as not verified and the others verified', {
    timeout: 60_000,
  }, async () => {
    const proc = hung.fileServers.find((f) => f.id === hungId)?.process.proc;
    assert.ok(proc);
    proc.kill('SIGCONT');
    const admin = await hung.client();
    const check = () =>
      admin.call<CheckResponse>('POST', '/v1/check/repair', { verify: true }, { headersTimeoutMs: 0 });
    const first = await check();
    assert.deepEqual(
      first.verify?.map((v) => v.error),
      [undefined, undefined, undefined, undefined],
      'all four answer: main keeps a connection to each',
    );
    proc.kill('SIGSTOP');
    const verified = new Map((await check()).verify?.map((v) => [v.server, v]));
    assert.equal(verified.size, 4);
    for (const [id, v] of verified) {
      if (id === hungId)
        assert.match(v.error ?? '', /has not answered for 10 s, nor answered a health check/);
      else assert.ok(v.checked > 0 && v.error === undefined, JSON.stringify(v));
    }
    assert.match(readFileSync(join(hung.mainData, 'main.log'), 'utf8'), /could not verify a server/);
  });
});
