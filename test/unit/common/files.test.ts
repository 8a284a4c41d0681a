import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileSource, isGone, mkdirDurable, renameReplacing } from '../../../src/common/files.js';

test('a file counts as gone on ENOENT everywhere, and on EPERM (pending deletion) only on Windows', () => {
  const code = (c: string) => Object.assign(new Error(c), { code: c });
  assert.equal(isGone(code('ENOENT'), 'linux'), true);
  assert.equal(isGone(code('ENOENT'), 'win32'), true);
  assert.equal(isGone(code('EPERM'), 'win32'), true);
  assert.equal(isGone(code('EPERM'), 'linux'), false);
  assert.equal(isGone(code('EACCES'), 'win32'), false);
  assert.equal(isGone(new Error('no code'), 'win32'), false);
  assert.equal(isGone(undefined, 'linux'), false);
});

test('a rename over a file held open is tried again on Windows until it goes through, and fails at once elsewhere', async () => {
  const busy = (code: string, times: number) => {
    let calls = 0;
    const move = async () => {
      calls++;
      if (calls <= times) throw Object.assign(new Error(code), { code });
    };
    return { move, calls: () => calls };
  };
  const held = busy('EPERM', 3);
  await renameReplacing('a', 'b', 'win32', held.move);
  assert.equal(held.calls(), 4);

  const elsewhere = busy('EPERM', 1);
  await assert.rejects(renameReplacing('a', 'b', 'linux', elsewhere.move), { code: 'EPERM' });
  assert.equal(elsewhere.calls(), 1);

  // Not a busy file: no second try.
  const missing = busy('ENOENT', 1);
  await assert.rejects(renameReplacing('a', 'b', 'win32', missing.move), { code: 'ENOENT' });
  assert.equal(missing.calls(), 1);

  // Held for good: it gives up after 8 tries, 10 + 20 + ... + 640 = 1,270 ms of waiting.
  const forever = busy('EBUSY', Number.POSITIVE_INFINITY);
  const started = Date.now();
  await assert.rejects(renameReplacing('a', 'b', 'win32', forever.move), { code: 'EBUSY' });
  assert.equal(forever.calls(), 8);
  assert.ok(Date.now() - started >= 1270);
});

test('a file source reads the file into the given buffer at the given place, then 0 at its end', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sedfs-source-'));
  try {
    writeFileSync(join(dir, 'f'), 'hello world');
    const source = fileSource(join(dir, 'f'));
    const buf = Buffer.alloc(16, '.');
    assert.equal(await source.readInto(buf, 2, 5), 5);
    assert.equal(await source.readInto(buf, 7, 9), 6);
    assert.equal(await source.readInto(buf, 0, 4), 0);
    assert.equal(buf.toString(), '..hello world...');
    await source.close();
    // Not opened until read: a source given up before its first read holds nothing open.
    await fileSource(join(dir, 'missing')).close();
    await assert.rejects(fileSource(join(dir, 'missing')).readInto(buf, 0, 1), { code: 'ENOENT' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mkdirDurable fsyncs the parent of each directory it makes, the deepest first, and none for one that exists', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-mkdir-'));
  try {
    const synced: string[] = [];
    const sync = async (dir: string) => {
      synced.push(dir);
    };
    await mkdirDurable(join(root, 'a', 'b', 'c'), sync);
    assert.deepEqual(synced, [join(root, 'a', 'b'), join(root, 'a'), root]);
    synced.length = 0;
    await mkdirDurable(join(root, 'a', 'b', 'c'), sync);
    assert.deepEqual(synced, []);
    await mkdirDurable(join(root, 'a', 'd'), sync);
    assert.deepEqual(synced, [join(root, 'a')]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
