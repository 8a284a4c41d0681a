import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { getFile, getTree } from '../../src/cli/transfer.js';
import type { FileSystem, OpenNode } from '../../src/client/file-system.js';
import { randomHexId } from '../../src/crypto/hash.js';
import { encryptName, nameMac, newNodeKey, wrapNodeKey } from '../../src/crypto/node-keys.js';
import type { SedfsError } from '../../src/protocol/errors.js';
import type { ContentResponse, ContentsResponse } from '../../src/protocol/namespace-api.js';
import { TestCluster } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser } from '../helpers/users.js';

/** The requests `run` makes to main, each as "METHOD path" (and the number of ids asked for). */
async function callsDuring(fs: FileSystem, run: () => Promise<void>): Promise<string[]> {
  const asked: string[] = [];
  const call = fs.client.call.bind(fs.client);
  fs.client.call = ((method, path, body, ...rest) => {
    // A batch of contents is told with how many files it asks for.
    const ids = (body as { ids?: unknown } | undefined)?.ids;
    asked.push(Array.isArray(ids) ? `${method} ${path} ${ids.length}` : `${method} ${path}`);
    return call(method, path, body, ...rest);
  }) as typeof fs.client.call;
  try {
    await run();
  } finally {
    fs.client.call = call;
  }
  return asked;
}

async function roundTrip(fs: FileSystem, path: string, data: Buffer, chunkBytes: number): Promise<Buffer> {
  await fs.put([data], path, { chunkBytes });
  const out = collector();
  await fs.get(path, out.sink);
  return out.bytes();
}

describe('the encrypted namespace', () => {
  let cluster: TestCluster;
  let fs: FileSystem;
  const CHUNK = 64 * 1024;

  before(async () => {
    cluster = await TestCluster.start({ servers: 3, replicas: 2 });
    fs = (await newUser(cluster, 'alice')).fs;
  });
  after(() => cluster?.stop());

  for (const [label, size] of [
    ['an empty file', 0],
    ['1 byte', 1],
    ['exactly one chunk', CHUNK],
    ['one chunk plus one byte', CHUNK + 1],
    ['several chunks', 5 * CHUNK + 123],
  ] as const) {
    test(`round trip of ${label}`, async () => {
      const data = seededBytes(size + 1, size);
      assert.deepEqual(await roundTrip(fs, `/rt-${size}`, data, CHUNK), data);
    });
  }

  test('a download into a slow writer waits for it chunk by chunk without piling up listeners', async () => {
    const data = seededBytes(7, 30 * CHUNK);
    await fs.put([data], '/slow-reader', { chunkBytes: CHUNK });
    const got: Buffer[] = [];
    // Takes each write a moment later and asks to wait after every one.
    const slow = new Writable({
      highWaterMark: 1,
      write(piece: Buffer, _enc, done) {
        got.push(Buffer.from(piece));
        setImmediate(done);
      },
    });
    await fs.get('/slow-reader', slow);
    assert.ok(Buffer.concat(got).equals(data));
    assert.ok(
      slow.listenerCount('error') <= 1,
      `${slow.listenerCount('error')} error listeners left on the writer`,
    );
    assert.equal(slow.listenerCount('drain'), 0);
  });

  test('names with spaces, unicode and 255 bytes round trip and list back', async () => {
    const names = ['with spaces.txt', 'ünïcødé 文件 🎉', 'x'.repeat(255)];
    await fs.mkdir('/names');
    for (const n of names) await fs.put([Buffer.from(n)], `/names/${n}`);
    const listed = await fs.list('/names');
    assert.deepEqual(listed.map((e) => e.name).sort(), [...names].sort());
    const out = collector();
    await fs.get(`/names/${names[1]}`, out.sink);
    assert.equal(out.bytes().toString(), names[1]);
  });

  test('mkdir -p, mv into a folder, rename, rm -r', async () => {
    await fs.mkdir('/a/b/c', { parents: true });
    await fs.put([Buffer.from('hello')], '/a/b/c/f.txt');
    await fs.mv('/a/b/c/f.txt', '/a');
    assert.deepEqual((await fs.list('/a')).map((e) => e.name).sort(), ['b', 'f.txt']);
    await fs.mv('/a/f.txt', '/a/g.txt');
    const out = collector();
    await fs.get('/a/g.txt', out.sink);
    assert.equal(out.bytes().toString(), 'hello');
    await assert.rejects(fs.rm('/a'), { code: 'SEDFS_ERR_NOT_EMPTY' });
    await fs.rm('/a', { recursive: true });
    await assert.rejects(fs.resolve('/a'), { code: 'SEDFS_ERR_NOT_FOUND' });
  });

  test('a new version replaces the old one', async () => {
    await fs.put([Buffer.from('one')], '/v.txt');
    await fs.put([Buffer.from('two, longer')], '/v.txt');
    const out = collector();
    await fs.get('/v.txt', out.sink);
    assert.equal(out.bytes().toString(), 'two, longer');
    assert.equal((await fs.list('/')).filter((e) => e.name === 'v.txt').length, 1);
  });

  test('a put over a version it read is refused once the file was removed, and makes nothing', async () => {
    await fs.put([Buffer.from('line 1\n')], '/removed.txt');
    const read = (await fs.resolve('/removed.txt')).entry.versionId;
    assert.ok(read);
    await fs.rm('/removed.txt');
    // As `write --append` would after reading it: the file removed in between stays removed.
    await assert.rejects(
      fs.put([Buffer.from('line 1\nline 2\n')], '/removed.txt', { expectVersionId: read }),
      {
        code: 'SEDFS_ERR_VERSION_CONFLICT',
        message: '/removed.txt was removed since it was read',
      },
    );
    assert.equal(await fs.find('/removed.txt'), undefined);
  });

  test("a get asks main once per name on the path and once for the file's content, nothing more", async () => {
    await fs.mkdir('/deep/er', { parents: true });
    await fs.put([Buffer.from('down here')], '/deep/er/f.txt');
    const local = await mkdtemp(join(tmpdir(), 'sedfs-calls-'));
    let asked: string[];
    try {
      asked = await callsDuring(fs, () => getFile(fs, 'er/f.txt', join(local, 'f.txt'), '/deep'));
      assert.equal(await readFile(join(local, 'f.txt'), 'utf8'), 'down here');
    } finally {
      await rm(local, { recursive: true, force: true });
    }
    // Three names, then the content (manifest and read tickets): the home folder's own
    // entry is not fetched, and the node getFile resolved is not walked to again.
    assert.equal(asked.length, 4, asked.join('\n'));
    assert.match(asked[3] as string, /^GET \/v1\/nodes\/[0-9a-f]+\/content$/);
  });

  test("get -r asks main for its small files' contents a batch at a time, not once per file", async () => {
    await fs.mkdir('/batch');
    const files = Array.from({ length: 150 }, (_, i) => ({
      name: `s${i}`,
      data: seededBytes(500 + i, 1 + i * 7),
    }));
    await fs.putMany('/batch', files);
    const local = await mkdtemp(join(tmpdir(), 'sedfs-batch-'));
    try {
      const asked = await callsDuring(fs, async () => {
        assert.equal(await getTree(fs, '/batch', join(local, 'out'), '/'), files.length);
      });
      for (const f of files) assert.deepEqual(await readFile(join(local, 'out', f.name)), f.data);
      // The folder's name and its children, then 64 + 64 + 22 contents.
      assert.deepEqual(
        asked.filter((a) => a.includes('content')),
        ['POST /v1/contents 64', 'POST /v1/contents 64', 'POST /v1/contents 22'],
      );
      assert.equal(asked.length, 5, asked.join('\n'));
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });

  test("contents answers for each file on its own: a folder, another user's file and a missing id get their errors", async () => {
    await fs.put([Buffer.from('mine')], '/mine.txt');
    const mine = await fs.resolve('/mine.txt');
    const folder = await fs.mkdir('/not-a-file');
    const bob = await newUser(cluster, 'bob-contents');
    try {
      await bob.fs.put([Buffer.from('his')], '/his.txt');
      const his = await bob.fs.resolve('/his.txt');
      const { contents } = await fs.client.call<ContentsResponse>('POST', '/v1/contents', {
        ids: [mine.entry.id, folder.entry.id, his.entry.id, randomHexId()],
      });
      const codes = contents.map((c) => ('error' in c ? c.error.code : c.node.id));
      // Someone else's file and no file at all answer alike: ids cannot be probed.
      assert.deepEqual(contents[2], { ...contents[3], id: his.entry.id });
      assert.deepEqual(codes, [
        mine.entry.id,
        'SEDFS_ERR_IS_A_FOLDER',
        'SEDFS_ERR_NOT_FOUND',
        'SEDFS_ERR_NOT_FOUND',
      ]);
      // An answer is what a get of that file alone uses.
      const out = collector();
      await fs.get(mine, out.sink, { content: contents[0] as ContentResponse });
      assert.equal(out.bytes().toString(), 'mine');
      // The client's own view: one error per file, naming it.
      const [ok, bad] = await fs.contents([mine, folder]);
      assert.equal((ok as ContentResponse).node.id, mine.entry.id);
      assert.equal((bad as SedfsError).code, 'SEDFS_ERR_IS_A_FOLDER');
      assert.match((bad as SedfsError).message, /^\/not-a-file: /);
      await assert.rejects(
        fs.client.call('POST', '/v1/contents', { ids: Array.from({ length: 257 }, () => randomHexId()) }),
        { code: 'SEDFS_ERR_BAD_REQUEST' },
      );
      await assert.rejects(fs.client.call('POST', '/v1/contents', { ids: [] }), {
        code: 'SEDFS_ERR_BAD_REQUEST',
      });
      await assert.rejects(fs.client.call('POST', '/v1/contents', { ids: [mine.entry.id, mine.entry.id] }), {
        code: 'SEDFS_ERR_BAD_REQUEST',
      });
    } finally {
      await bob.client.close();
    }
  });

  test('one answer of contents signs at most 1,024 chunks: a file past that is refused, files after it that fit are answered, and get -r fetches it alone', async () => {
    await fs.mkdir('/full');
    // 600 chunks of one byte each: two do not fit in one answer.
    const first = seededBytes(41, 600);
    const second = seededBytes(42, 600);
    await fs.put([first], '/full/a', { chunkBytes: 1 });
    await fs.put([second], '/full/b', { chunkBytes: 1 });
    await fs.put([Buffer.from('small')], '/full/c');
    await fs.put([Buffer.alloc(0)], '/full/empty');
    const nodes = await Promise.all(['a', 'b', 'c', 'empty'].map((n) => fs.resolve(`/full/${n}`)));
    const answers = await fs.contents(nodes);
    assert.deepEqual(
      answers.map((c) => (c instanceof Error ? (c as SedfsError).code : c.manifest.chunks.length)),
      [600, 'SEDFS_ERR_BATCH_FULL', 1, 1],
    );
    // Alone, it is answered.
    assert.equal(
      ((await fs.contents([nodes[1] as OpenNode]))[0] as ContentResponse).manifest.chunks.length,
      600,
    );
    const local = await mkdtemp(join(tmpdir(), 'sedfs-full-'));
    try {
      const asked = await callsDuring(fs, async () => {
        assert.equal(await getTree(fs, '/full', join(local, 'out'), '/'), 4);
      });
      assert.deepEqual(await readFile(join(local, 'out', 'a')), first);
      assert.deepEqual(await readFile(join(local, 'out', 'b')), second);
      assert.equal(await readFile(join(local, 'out', 'c'), 'utf8'), 'small');
      assert.equal((await readFile(join(local, 'out', 'empty'))).length, 0);
      // One batch for the four, and whichever 600-chunk file came second on its own, its
      // manifest a page of 256 chunks at a time.
      const contentCalls = asked.filter((x) => x.includes('content'));
      assert.equal(contentCalls.length, 4, asked.join('\n'));
      assert.equal(contentCalls[0], 'POST /v1/contents 4');
      assert.match(contentCalls[1] as string, /^GET \/v1\/nodes\/[0-9a-f]+\/content$/);
      assert.match(contentCalls[2] as string, /^GET \/v1\/nodes\/[0-9a-f]+\/content\?from=256$/);
      assert.match(contentCalls[3] as string, /^GET \/v1\/nodes\/[0-9a-f]+\/content\?from=512$/);
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });

  test('get -r fetches a file alone again when the contents asked for in advance no longer read', async () => {
    await fs.mkdir('/stale');
    const files = Array.from({ length: 3 }, (_, i) => ({ name: `t${i}`, data: seededBytes(60 + i, 100) }));
    await fs.putMany('/stale', files);
    const local = await mkdtemp(join(tmpdir(), 'sedfs-stale-'));
    const contents = fs.contents.bind(fs);
    // As if the tickets had expired while the batch waited: every one is refused.
    fs.contents = async (nodes) =>
      (await contents(nodes)).map((c) =>
        c instanceof Error
          ? c
          : {
              ...c,
              manifest: {
                ...c.manifest,
                chunks: c.manifest.chunks.map((k) => ({ ...k, ticket: 'expired' })),
              },
            },
      );
    try {
      const asked = await callsDuring(fs, async () => {
        assert.equal(await getTree(fs, '/stale', join(local, 'out'), '/'), files.length);
      });
      for (const f of files) assert.deepEqual(await readFile(join(local, 'out', f.name)), f.data);
      assert.equal(asked.filter((a) => /^GET \/v1\/nodes\/[0-9a-f]+\/content$/.test(a)).length, files.length);
      assert.deepEqual((await readdir(join(local, 'out'))).sort(), ['t0', 't1', 't2']);
    } finally {
      fs.contents = contents;
      await rm(local, { recursive: true, force: true });
    }
  });

  test('get -r of a folder where one file is gone by the time its content is asked for fails naming it; the others are written', async () => {
    await fs.mkdir('/onebad');
    await fs.putMany('/onebad', [
      { name: 'good', data: Buffer.from('fine') },
      { name: 'gone', data: Buffer.from('removed meanwhile') },
    ]);
    const local = await mkdtemp(join(tmpdir(), 'sedfs-onebad-'));
    const contents = fs.contents.bind(fs);
    // Removed between the listing and the batch's contents: main answers not found.
    fs.contents = async (nodes) => {
      await fs.rm('/onebad/gone');
      return contents(nodes);
    };
    try {
      await assert.rejects(getTree(fs, '/onebad', join(local, 'out'), '/'), (err: SedfsError) => {
        assert.equal(err.code, 'SEDFS_ERR_NOT_FOUND');
        assert.match(err.message, /^\/onebad\/gone: /);
        return true;
      });
      assert.deepEqual(await readdir(join(local, 'out')), ['good']);
      assert.equal(await readFile(join(local, 'out', 'good'), 'utf8'), 'fine');
    } finally {
      fs.contents = contents;
      await rm(local, { recursive: true, force: true });
    }
  });

  test('mkdir -p asks main once per name on the path and once per folder it makes, nothing more', async () => {
    await fs.mkdir('/made', { parents: true });
    const asked = await callsDuring(fs, async () => {
      await fs.mkdir('/made/new', { parents: true });
    });
    // Two names looked up, one folder made: the home folder's own entry is not fetched.
    assert.equal(asked.length, 3, asked.join('\n'));
    assert.match(asked[2] as string, /^POST \/v1\/nodes\/[0-9a-f]+\/children$/);
    assert.equal((await fs.resolve('/made/new')).entry.kind, 'dir');
  });

  test('a folder made without the wrapped key its parent was opened with is refused, except in a home folder, whose key never changes', async () => {
    const dir = await fs.mkdir('/witness');
    const home = await fs.resolve('/');
    const made = (parent: typeof dir, witness: boolean) => {
      const id = randomHexId();
      return fs.client.call('POST', `/v1/nodes/${parent.entry.id}/children`, {
        id,
        nameMac: nameMac(parent.key, `w-${id}`),
        nameEnc: encryptName(parent.key, parent.entry.id, id, `w-${id}`),
        wrappedKey: wrapNodeKey(parent.key, id, newNodeKey()),
        ...(witness ? { expectParentWrappedKey: parent.entry.wrappedKey as string } : {}),
      });
    };
    await assert.rejects(made(dir, false), (err: SedfsError) => err.code === 'SEDFS_ERR_BAD_REQUEST');
    await made(dir, true);
    await made(home, false);
  });

  test('an entry whose stored name could lead out of a folder is left out, said, and never followed', async () => {
    // A writer of a shared folder can store any name, not only what the client lets
    // through: this one goes around the client to main's API, as such a writer would.
    const dir = await fs.mkdir('/crafted');
    await fs.put([Buffer.from('fine')], '/crafted/ok.txt');
    const id = randomHexId();
    await fs.client.call('POST', `/v1/nodes/${dir.entry.id}/children`, {
      id,
      expectParentWrappedKey: dir.entry.wrappedKey as string,
      nameMac: nameMac(dir.key, '..'),
      nameEnc: encryptName(dir.key, dir.entry.id, id, '..'),
      wrappedKey: wrapNodeKey(dir.key, id, newNodeKey()),
    });
    const skipped: string[] = [];
    fs.onSkipped = (m) => skipped.push(m);
    const local = await mkdtemp(join(tmpdir(), 'sedfs-crafted-'));
    try {
      // The rest of the folder stays usable: listed and downloaded without the entry.
      assert.deepEqual(
        (await fs.list('/crafted')).map((e) => e.name),
        ['ok.txt'],
      );
      assert.equal(await getTree(fs, '/crafted', join(local, 'out'), '/'), 1);
      assert.deepEqual(await readdir(local), ['out']);
      assert.deepEqual(await readdir(join(local, 'out')), ['ok.txt']);
      assert.equal(skipped.length, 2);
      for (const m of skipped)
        assert.match(m, /^\/crafted: an entry \([0-9a-f]{8}\) was left out: not a valid name: "\.\."$/);
    } finally {
      fs.onSkipped = undefined;
      await rm(local, { recursive: true, force: true });
    }
  });

  test('many small files put at once are named as a typed path names them (NFC), so typed paths find them', async () => {
    await fs.mkdir('/nfc');
    // macOS hands local names over decomposed: e + combining acute accent.
    await fs.putMany('/nfc', [{ name: 'cafe\u0301.txt', data: Buffer.from('crema') }]);
    const out = collector();
    await fs.get('/nfc/caf\u00e9.txt', out.sink);
    assert.equal(out.bytes().toString(), 'crema');
    assert.deepEqual(
      (await fs.list('/nfc')).map((e) => e.name),
      ['caf\u00e9.txt'],
    );
  });

  test('a path through a file, and a missing path, are clear errors', async () => {
    await fs.put([Buffer.from('x')], '/file');
    await assert.rejects(fs.resolve('/file/inside'), { code: 'SEDFS_ERR_NOT_A_FOLDER' });
    await assert.rejects(fs.resolve('/missing/x'), { code: 'SEDFS_ERR_NOT_FOUND' });
  });
});

describe('the /shared view is reserved', () => {
  let cluster: TestCluster;
  let fs: FileSystem;
  before(async () => {
    cluster = await TestCluster.start({ servers: 1, replicas: 1 });
    fs = (await newUser(cluster, 'res')).fs;
  });
  after(() => cluster?.stop());

  test('nothing named /shared can be made, put or moved into the top of a home, and nothing inside the view', async () => {
    await assert.rejects(fs.mkdir('/shared'), { code: 'SEDFS_ERR_EXISTS' });
    await assert.rejects(fs.put([Buffer.from('x')], '/shared'), { code: 'SEDFS_ERR_IS_A_FOLDER' });
    await fs.put([Buffer.from('x')], '/f');
    await assert.rejects(fs.mv('/f', '/shared'), { code: 'SEDFS_ERR_BAD_REQUEST' });
    await assert.rejects(fs.put([Buffer.from('x')], '/shared/someone'), { code: 'SEDFS_ERR_BAD_REQUEST' });
    // A folder called shared deeper down is an ordinary folder.
    await fs.mkdir('/a/shared', { parents: true });
    assert.deepEqual(
      (await fs.list('/a')).map((e) => e.name),
      ['shared'],
    );
  });
});
