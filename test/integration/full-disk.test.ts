import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { sendBatch, sendChunk, storeBlob } from '../../src/client/store-blob.js';
import { SedfsError } from '../../src/protocol/errors.js';
import {
  type PutBatchResponse,
  type PutChunkResponse,
  SIZES_HEADER,
} from '../../src/protocol/file-server-api.js';
import { runSedfs, TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import {
  loopExt4Disk,
  loopExt4Unavailable,
  type SmallDisk,
  tmpfsDisk,
  tmpfsUnavailable,
} from '../helpers/small-disk.js';
import { newUser, type TestUser } from '../helpers/users.js';

const MiB = 1024 * 1024;

/** Fills `dir`'s file system with one more file until `leave` bytes are free (all of it by default). */
function fill(dir: string, leave = 0): string {
  const path = join(dir, `filler-${readdirSync(dir).filter((n) => n.startsWith('filler')).length}`);
  const { bavail, bsize } = statfsSync(dir);
  const bytes = Math.max(0, bavail * bsize - leave);
  try {
    writeFileSync(path, Buffer.alloc(bytes));
  } catch (err) {
    // A server wrote there since statfs (main's write-ahead log, a log line): what fit
    // was written, and full is what was asked for.
    if (leave > 0 || (err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  // A tmpfs may keep a few blocks back: top it up until it refuses.
  if (leave === 0)
    try {
      for (;;) writeFileSync(path, Buffer.alloc(4096), { flag: 'a' });
    } catch {}
  return path;
}

/** The lines of a server's JSON log. */
function logLines(file: string): { msg: string; level: number; code?: string; refused?: number }[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** Makes `url` refuse a request 64 times (each refusal is a line in the server's log). */
async function refusedRequests(url: string, cluster: TestCluster, status: number): Promise<void> {
  for (let i = 0; i < 64; i++) {
    const res = await request(url, { dispatcher: cluster.agent });
    assert.equal(res.statusCode, status);
    await res.body.dump();
  }
}

/**
 * A cluster whose file servers have small disks: server i a tmpfs of `mibs[i]` MiB, or
 * the test machine's disk where that is undefined. Each keeps 2 MiB in reserve, and beats
 * every 100 s, so main hears of a full disk between beats only if the server says so at once.
 */
async function clusterOnSmallDisks(
  replicas: number,
  mibs: (number | undefined)[],
): Promise<{ cluster: TestCluster; disks: (SmallDisk | undefined)[]; stop(): Promise<void> }> {
  const cluster = await TestCluster.start({
    servers: 0,
    replicas,
    heartbeatTimeout: 300,
    fileServerArgs: ['--reserve-mib', '2'],
  });
  const disks = mibs.map((mib, i) =>
    mib === undefined ? undefined : tmpfsDisk(mib, join(cluster.root, `fs${i}`)),
  );
  for (const _ of mibs) await cluster.addFileServer();
  await cluster.waitUp(mibs.length);
  return {
    cluster,
    disks,
    async stop() {
      // Nothing may hold a disk open as it is unmounted.
      for (const f of cluster.fileServers) await cluster.killFileServer(f.index);
      for (const d of disks) d?.unmount();
      await cluster.stop();
    },
  };
}

/** A failure is one clear line on stderr and a non-zero exit. */
function assertOneLineError(res: { code: number | null; stderr: string }, pattern: RegExp): void {
  assert.notEqual(res.code, 0);
  const lines = res.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, res.stderr);
  assert.match(lines[0] as string, pattern);
}

describe('a file server whose disk fills up', { skip: tmpfsUnavailable() }, () => {
  let cluster: TestCluster;
  let stop: () => Promise<void>;
  let user: TestUser;
  const a = seededBytes(1, MiB);
  const FULL = 0;

  before(async () => {
    ({ cluster, stop } = await clusterOnSmallDisks(2, [24, undefined]));
    user = await newUser(cluster, 'filler');
    await user.fs.put([a], '/a.bin', { chunkBytes: 256 * 1024 });
  });
  after(async () => {
    await user?.client.close();
    await stop?.();
  });

  const data = () => join(cluster.root, `fs${FULL}`);
  const refusals = () =>
    logLines(join(data(), 'fileserver.log')).filter((l) => /out of disk space/.test(l.msg));

  test('its replicas fail as out of space, once in its log, with no temporary file left, while the other server stores the file', async () => {
    fill(data(), 2.5 * MiB);
    const b = seededBytes(2, 8 * MiB);
    await user.fs.put([b], '/b.bin', { chunkBytes: MiB });
    const out = collector();
    await user.fs.get('/b.bin', out.sink);
    assert.deepEqual(out.bytes(), b);
    assert.deepEqual(readdirSync(join(data(), 'tmp')), []);
    const said = refusals();
    assert.equal(said.length, 1, JSON.stringify(said));
    assert.equal(said[0]?.level, 40, 'a warning');
    assert.ok(
      logLines(join(data(), 'fileserver.log')).every((l) => l.level < 50),
      'no error line per refused chunk',
    );
  });

  test('it tells main its free space at once, and placement stops choosing it', async () => {
    const id = cluster.fileServers[FULL]?.id;
    await waitFor(
      'main to hear the full server has no room for a chunk',
      async () => ((await cluster.servers()).find((s) => s.id === id)?.freeBytes ?? Infinity) < MiB,
      10_000,
    );
    const before = refusals()[0]?.refused;
    const warnings: string[] = [];
    await user.fs.put([seededBytes(3, 3 * MiB)], '/c.bin', {
      chunkBytes: MiB,
      onWarning: (w) => warnings.push(w),
    });
    assert.match(warnings.join('\n'), /have room/);
    // Nothing more was sent to it, so nothing more refused.
    assert.equal(refusals().length, 1);
    assert.equal(refusals()[0]?.refused, before);
  });

  test('it goes on serving what it holds, even with its disk full to the last byte and its log unwritable', async () => {
    await cluster.killFileServer(1 - FULL);
    fill(data());
    // Requests it refuses, and logs: more lines than the log file's last page holds.
    const url = (await cluster.servers()).find((s) => s.id === cluster.fileServers[FULL]?.id)?.url;
    await refusedRequests(`${url}/v1/chunks/${'0'.repeat(64)}`, cluster, 401);
    for (let i = 0; i < 3; i++) {
      const out = collector();
      await user.fs.get('/a.bin', out.sink);
      assert.deepEqual(out.bytes(), a);
    }
    assert.equal(cluster.fileServers[FULL]?.process.proc.exitCode, null, 'it is still running');
  });
});

describe('a full file server in a chain', { skip: tmpfsUnavailable() }, () => {
  let cluster: TestCluster;
  let disks: SmallDisk[] = [];
  let stop: () => Promise<void>;
  const FULL = 1;

  before(async () => {
    // Disks alike: placement, drawn by free space, puts each server anywhere in a chain.
    // Main keeps placing on the full one until it has refused something.
    const small = await clusterOnSmallDisks(3, [16, 16, 16]);
    ({ cluster, stop } = small);
    disks = small.disks as SmallDisk[];
    // Room above the reserve for no chunk of 300 KiB.
    fill((disks[FULL] as SmallDisk).dir, 2 * MiB + 64 * 1024);
  });
  after(() => stop?.());

  test('wherever it sits, it fails its own replica (a chunk or a batch) as out of space and the servers before it keep theirs; the client gives the rest theirs', async () => {
    const client = await cluster.client();
    const full = cluster.fileServers[FULL]?.id as string;
    const { uploadId } = await client.beginUpload(3);
    const chunks = Array.from({ length: 12 }, (_, i) => seededBytes(100 + i, 300 * 1024));
    // and small ones, which go in batches (one per chain), each more than it has room for
    const small = Array.from({ length: 36 }, (_, i) => seededBytes(200 + i, 100 * 1024));
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const ids = chunks.map(sha);
    // All placed before anything is sent: its first refusal tells main it is full.
    const { placements, batches = [] } = await client.place(
      uploadId,
      [...chunks, ...small].map((c) => ({ id: sha(c), size: c.length })),
    );
    const bodyOf = new Map([...chunks, ...small].map((c) => [sha(c), c]));
    /**
     * Sends to the head of a chain with the full server at `at`: the head refuses with 507
     * when it is the full one; otherwise each chunk's answer has receipts from the servers
     * before it, and its failure, as out of space, first among the failed.
     */
    const sendTo = async (
      servers: { id: string; url: string }[],
      path: string,
      headers: Record<string, string>,
      body: Buffer,
      answers: (json: unknown) => PutChunkResponse[],
    ) => {
      const at = servers.findIndex((s) => s.id === full);
      const res = await request(`${servers[0]?.url}${path}`, {
        dispatcher: await client.fileServerAgent(),
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', ...headers },
        body,
      });
      const json = (await res.body.json()) as { error?: { code: string } };
      if (at === 0) {
        assert.equal(res.statusCode, 507);
        assert.equal(json.error?.code, 'SEDFS_ERR_NO_SPACE');
        return at;
      }
      assert.equal(res.statusCode, 200, JSON.stringify(json));
      for (const r of answers(json)) {
        assert.deepEqual(
          r.receipts.map((x) => x.server),
          servers.slice(0, at).map((s) => s.id),
        );
        assert.deepEqual(
          { ...r.failed[0], message: '' },
          {
            server: full,
            code: 'SEDFS_ERR_NO_SPACE',
            message: '',
            attempted: true,
          },
        );
        assert.match(r.failed[0]?.message ?? '', /out of space/);
      }
      return at;
    };
    for (const b of batches)
      await sendTo(
        b.servers,
        '/v1/chunks',
        {
          'x-sedfs-ticket': b.ticket,
          [SIZES_HEADER]: b.chunks.map((id) => bodyOf.get(id)?.length).join(','),
        },
        Buffer.concat(b.chunks.map((id) => bodyOf.get(id) as Buffer)),
        (json) => (json as PutBatchResponse).results,
      );
    assert.ok(batches.length > 0, 'some small chunks went in batches');
    const seen = new Set<number>();
    for (const [i, p] of placements.slice(0, ids.length).entries())
      seen.add(
        await sendTo(
          p.servers,
          `/v1/chunks/${p.chunk}`,
          { 'x-sedfs-ticket': p.ticket },
          chunks[i] as Buffer,
          (json) => [json as PutChunkResponse],
        ),
      );
    assert.ok(seen.size > 1, 'it sat in more than one place');
    // What the client does with those answers: every other server ends with its copy.
    const stored = await storeBlob(client, chunks, { chunkBytes: 300 * 1024, replicas: 3 });
    const manifest = await client.manifest(stored.blobId);
    assert.equal(stored.underReplicated, manifest.chunks.length);
    for (const c of manifest.chunks)
      for (const i of [0, 1, 2]) assert.equal(existsSync(cluster.chunkPath(i, c.id)), i !== FULL);
    // No write is left hanging anywhere (none was begun downstream of a refusal).
    for (const d of disks) assert.deepEqual(readdirSync(join(d.dir, 'tmp')), []);
  });
});

describe('a file server that fills up after main placed chunks on it', { skip: tmpfsUnavailable() }, () => {
  let cluster: TestCluster;
  let disks: SmallDisk[] = [];
  let stop: () => Promise<void>;
  const FULL = 1;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const refusals = () =>
    logLines(join(cluster.root, `fs${FULL}`, 'fileserver.log')).filter((l) =>
      /out of disk space/.test(l.msg),
    );

  before(async () => {
    // Four servers for three copies: one is left to stand in for the full one.
    const small = await clusterOnSmallDisks(3, [16, 16, 16, 16]);
    ({ cluster, stop } = small);
    disks = small.disks as SmallDisk[];
  });
  after(() => stop?.());

  test('a chunk it refuses (alone or in a batch, wherever it sits in the chain) is sent to another server main places it on instead: every chunk has its three copies', async () => {
    const client = await cluster.client();
    const full = cluster.fileServers[FULL]?.id as string;
    // Small chunks, placed while main thinks it has room, sent in batches later.
    const small = Array.from({ length: 24 }, (_, i) => seededBytes(500 + i, 100 * 1024));
    const { uploadId } = await client.beginUpload(3);
    const { placements, batches = [] } = await client.place(
      uploadId,
      small.map((c) => ({ id: sha(c), size: c.length })),
    );
    assert.ok(
      batches.some((b) => b.servers.some((s) => s.id === full)),
      'some batch was placed on it',
    );
    fill((disks[FULL] as SmallDisk).dir, 2 * MiB + 64 * 1024);

    // Large chunks through the client's own pipeline: main places on it until it has
    // refused one (it then tells main it is full).
    const large = Array.from({ length: 8 }, (_, i) => seededBytes(600 + i, 300 * 1024));
    const stored = await storeBlob(client, large, { chunkBytes: 300 * 1024, replicas: 3 });
    assert.ok(refusals().length > 0, 'it refused some');
    assert.equal(stored.underReplicated, 0);
    const manifest = await client.manifest(stored.blobId);
    for (const c of manifest.chunks) {
      const holders = [0, 1, 2, 3].filter((i) => existsSync(cluster.chunkPath(i, c.id)));
      assert.equal(holders.length, 3);
      assert.ok(!holders.includes(FULL));
    }

    // The batches, as a put of small files sends them: those it is in are refused whole.
    const position = new Map(small.map((c, i) => [sha(c), i]));
    const answers = new Map(
      await Promise.all(
        batches.map(
          async (b) =>
            [
              b,
              await sendBatch(
                client,
                b,
                b.chunks.map((id) => small[position.get(id) as number] as Buffer),
              ).catch(() => undefined),
            ] as const,
        ),
      ),
    );
    const receipts = await Promise.all(
      small.map((body, i) => {
        const batch = batches.find((b) => b.chunks.includes(sha(body)));
        const sent = batch ? answers.get(batch)?.results[batch.chunks.indexOf(sha(body))] : undefined;
        return sendChunk(client, placements[i] as (typeof placements)[0], body, { uploadId, sent });
      }),
    );
    const committed = await client.commit(
      uploadId,
      small.map((c, i) => ({ id: sha(c), size: c.length, receipts: receipts[i] ?? [] })),
    );
    assert.equal(committed.underReplicated, 0);
    for (const r of receipts) assert.ok(!r.some((x) => x.server === full));
    for (const d of disks) assert.deepEqual(readdirSync(join(d.dir, 'tmp')), []);
  });
});

describe('a file server at its reserve, sent chunks it holds already', { skip: tmpfsUnavailable() }, () => {
  let cluster: TestCluster;
  let disks: SmallDisk[] = [];
  let stop: () => Promise<void>;
  const FULL = 2;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const large = Array.from({ length: 8 }, (_, i) => seededBytes(300 + i, 300 * 1024));
  const small = Array.from({ length: 24 }, (_, i) => seededBytes(400 + i, 100 * 1024));

  before(async () => {
    const cl = await clusterOnSmallDisks(3, [16, 16, 16]);
    ({ cluster, stop } = cl);
    disks = cl.disks as SmallDisk[];
    // Stored as they are (no sealing), so the same bytes are the same chunks again.
    const client = await cluster.client();
    await storeBlob(client, large, { chunkBytes: 300 * 1024, replicas: 3 });
    await storeBlob(client, small, { chunkBytes: 100 * 1024, replicas: 3 });
    for (const c of [...large, ...small]) assert.ok(existsSync(cluster.chunkPath(FULL, sha(c))));
    // Room above the reserve for no chunk of 100 KiB.
    fill((disks[FULL] as SmallDisk).dir, 2 * MiB + 64 * 1024);
  });
  after(() => stop?.());

  test('takes them again, alone and in batches, wherever it sits in the chain: every copy has its receipt', async () => {
    const client = await cluster.client();
    // Main has not heard it is full (it refused nothing): it still places there.
    const stored = await storeBlob(client, large, { chunkBytes: 300 * 1024, replicas: 3 });
    assert.equal(stored.underReplicated, 0);
    const { uploadId } = await client.beginUpload(3);
    const { batches = [] } = await client.place(
      uploadId,
      small.map((c) => ({ id: sha(c), size: c.length })),
    );
    assert.ok(batches.length > 0, 'some chunks went in batches');
    const bodyOf = new Map(small.map((c) => [sha(c), c]));
    for (const b of batches) {
      const res = await request(`${b.servers[0]?.url}/v1/chunks`, {
        dispatcher: await client.fileServerAgent(),
        method: 'PUT',
        headers: {
          'content-type': 'application/octet-stream',
          'x-sedfs-ticket': b.ticket,
          [SIZES_HEADER]: b.chunks.map((id) => bodyOf.get(id)?.length).join(','),
        },
        body: Buffer.concat(b.chunks.map((id) => bodyOf.get(id) as Buffer)),
      });
      const json = (await res.body.json()) as PutBatchResponse;
      assert.equal(res.statusCode, 200, JSON.stringify(json));
      for (const r of json.results) {
        assert.deepEqual(r.failed, []);
        assert.equal(r.receipts.length, 3);
      }
    }
    assert.deepEqual(readdirSync(join((disks[FULL] as SmallDisk).dir, 'tmp')), []);
  });
});

describe('sedfs put to a cluster whose every file server is full', { skip: tmpfsUnavailable() }, () => {
  let cluster: TestCluster;
  let disks: SmallDisk[] = [];
  let stop: () => Promise<void>;
  let work: string;
  let env: Record<string, string>;
  const sedfs = (...args: string[]) => runSedfs(args, env);

  before(async () => {
    const small = await clusterOnSmallDisks(2, [16, 16]);
    ({ cluster, stop } = small);
    disks = small.disks as SmallDisk[];
    work = mkdtempSync(join(tmpdir(), 'sedfs-full-cli-'));
    env = { SEDFS_HOME: join(work, 'profile'), SEDFS_MAIN: cluster.mainUrl, SEDFS_PASSPHRASE: 'pass' };
    assert.equal((await sedfs('signup', 'dora')).code, 0);
    writeFileSync(join(work, 'big.bin'), seededBytes(4, 3 * MiB));
    for (const d of disks) fill(d.dir, 2.5 * MiB);
  });
  after(async () => {
    await stop?.();
    rmSync(work, { recursive: true, force: true });
  });

  const listed = async () => (await sedfs('ls', '/')).stdout;

  test('before main knows, the servers refuse: one clear line, a non-zero exit, and nothing committed', async () => {
    assertOneLineError(
      await sedfs('put', join(work, 'big.bin'), '/big.bin'),
      /out of space.*SEDFS_ERR_NO_SPACE/,
    );
    assert.doesNotMatch(await listed(), /big\.bin/);
  });

  test('once main knows, it refuses the placement: "the cluster is out of space"', async () => {
    await waitFor(
      'main to hear both servers are full',
      async () => (await cluster.servers()).every((s) => s.freeBytes < MiB),
      10_000,
    );
    assertOneLineError(
      await sedfs('put', join(work, 'big.bin'), '/big.bin'),
      /the cluster is out of space.*SEDFS_ERR_NO_SPACE/,
    );
    assert.doesNotMatch(await listed(), /big\.bin/);
  });

  test('put -r of small files (sent in batches) fails the same way, and none of them is committed', async () => {
    const dir = join(work, 'small');
    mkdirSync(dir);
    for (let i = 0; i < 20; i++) writeFileSync(join(dir, `f${i}`), seededBytes(10 + i, 100 * 1024));
    assertOneLineError(await sedfs('put', '-r', dir, '/small'), /out of space.*SEDFS_ERR_NO_SPACE/);
    assert.equal((await sedfs('ls', '/small')).stdout.trim(), '');
  });
});

/** `sedfs get` into a small local disk the file does not fit on. */
function getIntoFullDisk(name: string, unavailable: string | undefined, mount: () => SmallDisk) {
  describe(name, { skip: unavailable }, () => {
    let cluster: TestCluster;
    let disk: SmallDisk;
    let work: string;
    let env: Record<string, string>;
    const sedfs = (...args: string[]) => runSedfs(args, env);

    before(async () => {
      cluster = await TestCluster.start({ servers: 1, replicas: 1 });
      disk = mount();
      work = mkdtempSync(join(tmpdir(), 'sedfs-full-get-'));
      env = { SEDFS_HOME: join(work, 'profile'), SEDFS_MAIN: cluster.mainUrl, SEDFS_PASSPHRASE: 'pass' };
      assert.equal((await sedfs('signup', 'erin')).code, 0);
      writeFileSync(join(work, 'f.bin'), seededBytes(5, 12 * MiB));
      assert.equal((await sedfs('put', join(work, 'f.bin'), '/f.bin')).code, 0);
    });
    after(async () => {
      disk?.unmount();
      await cluster?.stop();
      rmSync(work, { recursive: true, force: true });
    });

    test('fails with one line naming the local file, and leaves nothing of it behind', async () => {
      const target = join(disk.dir, 'out', 'f.bin');
      const res = await sedfs('get', '/f.bin', target);
      assertOneLineError(res, /no space left on the local disk/);
      assert.ok(res.stderr.includes(target), res.stderr);
      assert.deepEqual(readdirSync(join(disk.dir, 'out')), []);
    });
  });
}

getIntoFullDisk('sedfs get into a full tmpfs', tmpfsUnavailable(), () => tmpfsDisk(4));
getIntoFullDisk('sedfs get into a full ext4 (O_DIRECT writes)', loopExt4Unavailable(), () => loopExt4Disk(8));

describe("main's own disk filling up", { skip: tmpfsUnavailable() }, () => {
  let cluster: TestCluster;
  let disk: SmallDisk;
  let user: TestUser;
  let filler: string;
  const kept = seededBytes(6, 300_000);

  before(async () => {
    cluster = await TestCluster.start({
      servers: 1,
      replicas: 1,
      beforeStart: (root) => {
        disk = tmpfsDisk(16, join(root, 'main'));
      },
    });
    user = await newUser(cluster, 'frank');
    await user.fs.mkdir('/before');
    await user.fs.put([kept], '/kept.bin');
    // The audit log's last page full: once the disk is, no line more fits.
    const audit = join(cluster.mainData, 'audit.log');
    // A line {"pad":"x…"} and its newline are 11 bytes and the x's.
    const room = 4096 - (statSync(audit).size % 4096);
    appendFileSync(audit, `${JSON.stringify({ pad: 'x'.repeat((room < 11 ? room + 4096 : room) - 11) })}\n`);
    assert.equal(statSync(audit).size % 4096, 0);
  });
  after(async () => {
    await user?.client.close();
    await cluster?.stopMain('SIGKILL').catch(() => undefined);
    disk?.unmount();
    await cluster?.stop();
  });

  test('a change it cannot write is refused as 507 SEDFS_ERR_NO_SPACE, and main keeps running and serving reads', async () => {
    filler = fill(disk.dir);
    let refused: unknown;
    // The database's write-ahead log may have room left for a few changes first.
    for (let i = 0; i < 2000 && refused === undefined; i++)
      await user.fs.mkdir(`/d${i}`).catch((err: unknown) => {
        refused = err;
      });
    assert.ok(
      refused instanceof SedfsError && refused.code === 'SEDFS_ERR_NO_SPACE' && refused.status === 507,
      `refused with ${(refused as Error)?.stack}; main said: ${cluster.main.output().slice(-3000)}`,
    );
    assert.match(refused.message, /disk is full/);
    // Requests it refuses, and logs: more lines than its log file's last page holds.
    await refusedRequests(`${cluster.mainUrl}/v1/nodes/${'0'.repeat(32)}`, cluster, 401);
    assert.equal(cluster.main.proc.exitCode, null, 'main is still running');
    const names = (await user.fs.list('/')).map((e) => e.name);
    assert.ok(names.includes('before') && names.includes('kept.bin'), names.join(' '));
    const out = collector();
    await user.fs.get('/kept.bin', out.sink);
    assert.deepEqual(out.bytes(), kept);
  });

  test("a stranger's refused requests are still answered 401 when the audit log cannot take them, and counted without stopping main", async () => {
    for (let i = 0; i < 32; i++) {
      const res = await request(`${cluster.mainUrl}/v1/me`, {
        dispatcher: cluster.agent,
        headers: { authorization: 'Bearer not-a-session' },
      });
      assert.equal(res.statusCode, 401);
      await res.body.dump();
    }
    // Their count is written from a timer a second later: it cannot be either.
    await waitFor(
      'main to say its audit log cannot be written, or to stop',
      () =>
        cluster.main.output().includes('the audit log cannot be written') ||
        cluster.main.proc.exitCode !== null,
    );
    assert.equal(
      cluster.main.proc.exitCode,
      null,
      `main is still running: ${cluster.main.output().slice(-3000)}`,
    );
  });

  test('once there is room again, changes go through and nothing committed before was lost', async () => {
    rmSync(filler);
    assert.equal(
      cluster.main.proc.exitCode,
      null,
      `main is still running: ${cluster.main.output().slice(-3000)}`,
    );
    await user.fs.mkdir('/after');
    const names = (await user.fs.list('/')).map((e) => e.name);
    assert.ok(
      ['before', 'kept.bin', 'after'].every((n) => names.includes(n)),
      names.join(' '),
    );
    assert.ok(existsSync(join(cluster.mainData, 'main.db')));
  });
});
