import assert from 'node:assert/strict';
import {
  type Dirent,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { after, mock, test } from 'node:test';
import {
  endsWithSeparator,
  entryKind,
  getFile,
  putFile,
  putInPlace,
  putTree,
} from '../../../src/cli/transfer.js';
import type { FileSystem, OpenNode, TransferOptions } from '../../../src/client/file-system.js';
import { SedfsError } from '../../../src/protocol/errors.js';

const root = mkdtempSync(join(tmpdir(), 'sedfs-transfer-'));
after(() => rmSync(root, { recursive: true, force: true }));

const file = (size: number): OpenNode => ({
  entry: {
    id: 'a'.repeat(32),
    kind: 'file',
    parentId: 'b'.repeat(32),
    nameMac: null,
    nameEnc: null,
    wrappedKey: null,
    versionId: 'c'.repeat(32),
    size,
    modifiedAt: 0,
  },
  key: Buffer.alloc(32),
  name: 'f.bin',
  path: '/f.bin',
});

/** A file system whose `get` of `node` is `get` (and `put` is `put`), with nothing behind it. */
function fakeFs(
  node: OpenNode,
  get: (out: Writable, opts: TransferOptions) => Promise<{ size: number }>,
  put: (opts: TransferOptions) => Promise<OpenNode> = async () => node,
): FileSystem {
  return {
    nodeOf: async () => node,
    get: (_target: unknown, out: Writable, opts: TransferOptions = {}) => get(out, opts),
    put: (_source: unknown, _path: string, opts: TransferOptions = {}) => put(opts),
  } as unknown as FileSystem;
}

/**
 * What `body` writes to stderr, with stdout taken for a terminal (where bars are drawn)
 * and the clock moved on by `clock.tick`.
 */
async function onTerminal(body: (clock: { tick(ms: number): void }) => Promise<void>): Promise<string> {
  const wasTty = process.stdout.isTTY;
  process.stdout.isTTY = true;
  let now = 0;
  mock.method(Date, 'now', () => now);
  let stderr = '';
  mock.method(process.stderr, 'write', (text: string) => {
    stderr += text;
    return true;
  });
  try {
    await body({
      tick: (ms) => {
        now += ms;
      },
    });
  } finally {
    mock.restoreAll();
    process.stdout.isTTY = wasTty;
  }
  return stderr;
}

for (const size of [10, 8 * 1024 * 1024]) {
  test(`a get whose local file fails while chunks are still awaited fails at once with the file's name, and leaves nothing (${size} bytes)`, async () => {
    const dir = mkdtempSync(join(root, 'fails-'));
    const local = join(dir, 'f.bin');
    // The writer fails (a disk error) while the download waits on the network; a download
    // that is not waiting on the writer then may not hear of it for a long while.
    const fs = fakeFs(file(size), (out) => {
      out.destroy(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }));
      return new Promise(() => undefined);
    });
    await assert.rejects(getFile(fs, '/f.bin', local, '/'), {
      code: 'EIO',
      message: `cannot write ${local}: EIO: i/o error, write`,
    });
    assert.deepEqual(readdirSync(dir), []);
  });
}

test('a get whose local file cannot be made fails before anything is fetched', async () => {
  let fetched = false;
  const fs = fakeFs(file(10), async () => {
    fetched = true;
    return { size: 10 };
  });
  // /proc takes no new files, even from root.
  await assert.rejects(getFile(fs, '/f.bin', '/proc/f.bin', '/'), {
    code: 'ENOENT',
    message: /^cannot write \/proc\/f\.bin: ENOENT/,
  });
  assert.equal(fetched, false);
});

test('a get writes what the download wrote, under the local name', async () => {
  const dir = mkdtempSync(join(root, 'works-'));
  const fs = fakeFs(file(5), async (out) => {
    out.write(Buffer.from('hello'));
    return { size: 5 };
  });
  await getFile(fs, '/f.bin', join(dir, 'f.bin'), '/');
  assert.deepEqual(readdirSync(dir), ['f.bin']);
  assert.equal(readFileSync(join(dir, 'f.bin'), 'utf8'), 'hello');
});

test('a get has made its temporary file before it fetches anything, so one that fails at once leaves none', async () => {
  const dir = mkdtempSync(join(root, 'early-'));
  let seen: string[] = [];
  const fs = fakeFs(file(10), async () => {
    // Made in the background instead, the file could appear after the failed get had
    // removed it (an empty file nothing would ever look for).
    seen = readdirSync(dir);
    throw new Error('main refused');
  });
  await assert.rejects(getFile(fs, '/f.bin', join(dir, 'f.bin'), '/'), /main refused/);
  assert.equal(seen.length, 1);
  assert.match(seen[0] as string, /\.sedfs-part$/);
  assert.deepEqual(readdirSync(dir), []);
});

test('a transfer failing after its bar was drawn ends the bar’s line, so the error starts a line of its own', async () => {
  const dir = mkdtempSync(join(root, 'bar-'));
  const local = join(dir, 'up.bin');
  writeFileSync(local, Buffer.alloc(1000));
  for (const what of ['get', 'put']) {
    const stderr = await onTerminal(async (clock) => {
      // A second and a half in, 40% done, the transfer fails.
      const failing = async (opts: TransferOptions): Promise<never> => {
        opts.onProgress?.(100);
        clock.tick(1500);
        opts.onProgress?.(400);
        throw new Error('cannot reach the file servers');
      };
      const fs = fakeFs(file(1000), (_out, opts) => failing(opts), failing);
      const transfer =
        what === 'get' ? getFile(fs, '/f.bin', join(dir, 'f.bin'), '/') : putFile(fs, local, '/up.bin');
      await assert.rejects(transfer, /cannot reach/);
    });
    assert.match(stderr, /^\r.* 40%.*\n$/, `${what}: ${JSON.stringify(stderr)}`);
  }
});

test('a local path ends in a separator with a slash anywhere, and with a backslash on Windows only', () => {
  assert.equal(endsWithSeparator('out/', 'linux'), true);
  assert.equal(endsWithSeparator('D:\\dir\\', 'win32'), true);
  assert.equal(endsWithSeparator('D:\\dir\\', 'linux'), false, 'a backslash is part of a name elsewhere');
  assert.equal(endsWithSeparator('D:\\dir', 'win32'), false);
});

test('put -r takes an entry listed as a link that lstat calls a file or folder (a Windows reparse point: OneDrive), and skips a real link', async () => {
  const listed = (name: string) => ({
    name,
    isFile: () => false,
    isDirectory: () => false,
    isSymbolicLink: () => true,
  });
  const lstatSays = (kind: 'file' | 'dir' | 'link') => async () => ({
    isFile: () => kind === 'file',
    isDirectory: () => kind === 'dir',
  });
  assert.equal(await entryKind('C:\\OneDrive', listed('a.docx'), lstatSays('file')), 'file');
  assert.equal(await entryKind('C:\\OneDrive', listed('Photos'), lstatSays('dir')), 'dir');
  assert.equal(await entryKind('/home/me', listed('loop'), lstatSays('link')), 'other');
  // On Linux a real link stays a link: lstat says so.
  const dir = mkdtempSync(join(tmpdir(), 'sedfs-links-'));
  try {
    symlinkSync(dir, join(dir, 'up'));
    const [up] = readdirSync(dir, { withFileTypes: true });
    assert.equal(await entryKind(dir, up as Dirent), 'other');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a put -r that fails part way says where it stopped, how many files went up before, and that the rest did not', async () => {
  const tree = join(root, 'tree');
  mkdirSync(join(tree, 'sub'), { recursive: true });
  const big = Buffer.alloc(1024 * 1024 + 1, 7);
  for (const name of ['a.bin', 'b.bin', 'sub/c.bin']) writeFileSync(join(tree, name), big);
  for (const name of ['s1.txt', 's2.txt', 'sub/s3.txt']) writeFileSync(join(tree, name), name);
  let uploaded = 0;
  const fs = {
    mkdir: async () => undefined,
    list: async () => [],
    put: async (_source: unknown, path: string) => {
      if (path.endsWith('/b.bin')) throw new SedfsError('SEDFS_ERR_NO_SERVERS', 'no file server is up');
      uploaded++;
      return file(big.length);
    },
    putMany: async (_folder: string, files: unknown[]) => {
      uploaded += files.length;
      return files.length;
    },
  } as unknown as FileSystem;
  const err = await putTree(fs, tree, '/backup/tree').then(
    () => assert.fail('the put -r went through'),
    (e: SedfsError) => e,
  );
  assert.equal(err.code, 'SEDFS_ERR_NO_SERVERS', 'the cause keeps its code');
  assert.equal(
    err.message,
    `put -r stopped at ${join(tree, 'b.bin')}: no file server is up. ${uploaded} file(s) of ${tree} were uploaded to /backup/tree before that (each whole; a batch cut short may have put up some of its own), the rest were not; the folders made are kept. To upload only the rest (files already there with the same size, unchanged since, are left): sedfs put -r --skip-existing -T ${tree} /backup/tree`,
  );
});

test('put -r --skip-existing leaves the files already in the target with the same size, stored since they were modified here, and uploads the others', async () => {
  const tree = join(root, 'again');
  mkdirSync(join(tree, 'sub'), { recursive: true });
  const big = Buffer.alloc(1024 * 1024 + 1, 7);
  writeFileSync(join(tree, 'a.bin'), big);
  writeFileSync(join(tree, 'b.bin'), big);
  writeFileSync(join(tree, 's1.txt'), 'one');
  writeFileSync(join(tree, 's2.txt'), 'two');
  writeFileSync(join(tree, 'sub', 's3.txt'), 'three');
  // Written as macOS lists names from HFS+ (NFD); stored names are NFC.
  writeFileSync(join(tree, 'cafe\u0301.txt'), 'four');
  // Already there: a.bin, s1.txt and café.txt whole, s2.txt at another size, sub/ empty;
  // s4.txt at the same size, stored before it was modified here.
  writeFileSync(join(tree, 's4.txt'), 'four');
  const stored = Date.now() + 60_000;
  const remote: Record<string, { name: string; kind: string; size: number; modifiedAt: number }[]> = {
    '/t': [
      { name: 'a.bin', kind: 'file', size: big.length, modifiedAt: stored },
      { name: 's1.txt', kind: 'file', size: 3, modifiedAt: stored },
      { name: 's2.txt', kind: 'file', size: 10, modifiedAt: stored },
      { name: 'caf\u00e9.txt', kind: 'file', size: 4, modifiedAt: stored },
      { name: 's4.txt', kind: 'file', size: 4, modifiedAt: Date.now() - 60_000 },
      { name: 'sub', kind: 'dir', size: 0, modifiedAt: stored },
    ],
    '/t/sub': [],
  };
  const sent: string[] = [];
  const fs = {
    mkdir: async () => undefined,
    list: async (path: string) => remote[path] ?? [],
    put: async (_source: unknown, path: string) => {
      sent.push(path);
      return file(big.length);
    },
    putMany: async (folder: string, files: { name: string }[]) => {
      for (const f of files) sent.push(`${folder}/${f.name}`);
      return files.length;
    },
  } as unknown as FileSystem;
  assert.deepEqual(await putTree(fs, tree, '/t', { skipExisting: true }), { uploaded: 4, skipped: 3 });
  assert.deepEqual(sent.sort(), ['/t/b.bin', '/t/s2.txt', '/t/s4.txt', '/t/sub/s3.txt']);
  sent.length = 0;
  assert.deepEqual(
    await putTree(fs, tree, '/t'),
    { uploaded: 7, skipped: 0 },
    'without it, every file goes up',
  );
});

test('put -r lists the target folder once and tells each batch its names, and sends two batches at a time, no more', async () => {
  const tree = join(root, 'batches');
  mkdirSync(tree);
  // 1,001 small files: three batches of at most 500.
  for (let i = 0; i <= 1000; i++) writeFileSync(join(tree, `f${i}.txt`), String(i));
  const listed: string[] = [];
  const told: ReadonlySet<string>[] = [];
  let inFlight = 0;
  let most = 0;
  const sent = new Set<string>();
  const fs = {
    mkdir: async () => undefined,
    list: async (path: string) => {
      listed.push(path);
      return [{ name: 'f7.txt', kind: 'file', size: 1, modifiedAt: 0 }];
    },
    putMany: async (_folder: string, files: { name: string }[], opts: { existing?: ReadonlySet<string> }) => {
      inFlight++;
      most = Math.max(most, inFlight);
      if (opts.existing) told.push(opts.existing);
      await new Promise((res) => setTimeout(res, 30));
      for (const f of files) sent.add(f.name);
      inFlight--;
      return files.length;
    },
  } as unknown as FileSystem;
  assert.deepEqual(await putTree(fs, tree, '/t'), { uploaded: 1001, skipped: 0 });
  assert.deepEqual(listed, ['/t']);
  assert.equal(told.length, 3);
  for (const names of told) assert.ok(names.has('f7.txt'));
  assert.equal(most, 2);
  assert.equal(sent.size, 1001);
});

test('put -r sends the small files whose stored name another entry here has (NFC and NFD, a small file and a big one) each on its own, after the batches', async () => {
  const tree = join(root, 'same-name');
  mkdirSync(tree);
  writeFileSync(join(tree, 'caf\u00e9.txt'), 'composed');
  writeFileSync(join(tree, 'cafe\u0301.txt'), 'decomposed');
  writeFileSync(join(tree, 'other.txt'), 'other');
  // A big file whose stored name a small one has too (the same name decomposed).
  writeFileSync(join(tree, 'r\u00e9sum\u00e9.pdf'), Buffer.alloc(1024 * 1024 + 1, 1));
  writeFileSync(join(tree, 're\u0301sume\u0301.pdf'), 'a small one');
  const events: string[] = [];
  const fs = {
    mkdir: async () => undefined,
    list: async () => [],
    put: async (_source: unknown, path: string) => {
      events.push(`put ${path.normalize('NFC')}`);
      return file(1);
    },
    putMany: async (_folder: string, files: { name: string }[]) => {
      await new Promise((res) => setTimeout(res, 20));
      events.push(`batch of ${files.map((f) => f.name).join(',')}`);
      return files.length;
    },
  } as unknown as FileSystem;
  assert.deepEqual(await putTree(fs, tree, '/t'), { uploaded: 5, skipped: 0 });
  // The big one during the walk, the batch (other.txt alone), then the small ones sharing names.
  const batch = events.indexOf('batch of other.txt');
  assert.ok(batch >= 0, events.join(' | '));
  assert.deepEqual(events.slice(batch + 1).sort(), [
    'put /t/caf\u00e9.txt',
    'put /t/caf\u00e9.txt',
    'put /t/r\u00e9sum\u00e9.pdf',
  ]);
  assert.deepEqual(events.slice(0, batch), ['put /t/r\u00e9sum\u00e9.pdf']);
});

test('put -r sends a batch again, listing the folder anew, when a name in it was made meanwhile (SEDFS_ERR_EXISTS: the batch made nothing)', async () => {
  const tree = join(root, 'made-meanwhile');
  mkdirSync(tree);
  for (const name of ['a.txt', 'b.txt']) writeFileSync(join(tree, name), name);
  const calls: (ReadonlySet<string> | undefined)[] = [];
  const fs = {
    mkdir: async () => undefined,
    list: async () => [],
    putMany: async (_folder: string, files: unknown[], opts: { existing?: ReadonlySet<string> }) => {
      calls.push(opts.existing);
      if (opts.existing) throw new SedfsError('SEDFS_ERR_EXISTS');
      return files.length;
    },
  } as unknown as FileSystem;
  assert.deepEqual(await putTree(fs, tree, '/t'), { uploaded: 2, skipped: 0 });
  assert.equal(calls.length, 2);
  assert.ok(calls[0] instanceof Set, 'first with the names listed at the start');
  assert.equal(calls[1], undefined, 'then left to list the folder itself');
});

test('put -r sends no more batches once one failed, and says the failure once those sent have ended', async () => {
  const tree = join(root, 'stops');
  mkdirSync(tree);
  for (let i = 0; i < 2500; i++) writeFileSync(join(tree, `f${i}.txt`), 'x');
  let started = 0;
  const fs = {
    mkdir: async () => undefined,
    list: async () => [],
    putMany: async (_folder: string, files: unknown[]) => {
      started++;
      // The second fails at once while the first is still going.
      if (started === 2) throw new SedfsError('SEDFS_ERR_NO_SPACE', 'the cluster is out of space');
      await new Promise((res) => setTimeout(res, 100));
      return files.length;
    },
  } as unknown as FileSystem;
  const err = await putTree(fs, tree, '/t').then(
    () => assert.fail('the put -r went through'),
    (e: SedfsError) => e,
  );
  assert.equal(err.code, 'SEDFS_ERR_NO_SPACE');
  assert.match(err.message, / 500 file\(s\) of /);
  assert.equal(started, 2, 'none after the one that failed');
});

test('a finished download whose file another program holds open (Windows) is tried again, then kept under its temporary name, the error saying where', async () => {
  const dir = mkdtempSync(join(root, 'held-'));
  const tmp = join(dir, '.0123abcd.sedfs-part');
  const local = join(dir, 'report.xlsx');
  writeFileSync(tmp, 'the new version');
  writeFileSync(local, 'the open one');
  let tries = 0;
  const refused = async () => {
    tries++;
    throw Object.assign(new Error('EPERM: operation not permitted, rename'), { code: 'EPERM' });
  };
  await assert.rejects(putInPlace(tmp, local, 'win32', refused, 300), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'EPERM');
    assert.equal(
      err.message,
      `cannot replace ${local}: another program has it open (EPERM). The file was downloaded whole and checked, and is kept as ${tmp}: close report.xlsx there and rename the kept file to it, or get it again`,
    );
    return true;
  });
  assert.ok(tries > 3, `tried ${tries} times`);
  assert.equal(readFileSync(tmp, 'utf8'), 'the new version');
  assert.equal(readFileSync(local, 'utf8'), 'the open one');
  // Elsewhere the same refusal is no program holding it: thrown as it came.
  await assert.rejects(putInPlace(tmp, local, 'linux', refused), (err: Error) =>
    err.message.startsWith('EPERM'),
  );
  await putInPlace(tmp, local, 'linux');
  assert.equal(readFileSync(local, 'utf8'), 'the new version');
});
