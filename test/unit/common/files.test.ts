import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, win32 } from 'node:path';
import { test } from 'node:test';
import {
  fileSource,
  flushRenamed,
  heldOpen,
  isGone,
  makeDataFolder,
  mkdirDurable,
  removeFreeingName,
  renameReplacing,
  syncDirWhereSupported,
  writeFileAtomic,
} from '../../../src/common/files.js';

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

test('a file is taken as held open by another handle only on Windows, and only for EPERM, EACCES or EBUSY', () => {
  const err = (code: string) => Object.assign(new Error(code), { code });
  for (const code of ['EPERM', 'EACCES', 'EBUSY']) {
    assert.equal(heldOpen(err(code), 'win32'), true, code);
    assert.equal(heldOpen(err(code), 'linux'), false, code);
  }
  assert.equal(heldOpen(err('ENOENT'), 'win32'), false);
  assert.equal(heldOpen(undefined, 'win32'), false);
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
  await renameReplacing('a', 'b', { platform: 'win32', move: held.move, flush: async () => {} });
  assert.equal(held.calls(), 4);

  const elsewhere = busy('EPERM', 1);
  await assert.rejects(renameReplacing('a', 'b', { platform: 'linux', move: elsewhere.move }), {
    code: 'EPERM',
  });
  assert.equal(elsewhere.calls(), 1);

  // Not a busy file: no second try.
  const missing = busy('ENOENT', 1);
  await assert.rejects(renameReplacing('a', 'b', { platform: 'win32', move: missing.move }), {
    code: 'ENOENT',
  });
  assert.equal(missing.calls(), 1);

  // Held for good: it gives up after 8 tries, 10 + 20 + ... + 640 = 1,270 ms of waiting.
  const forever = busy('EBUSY', Number.POSITIVE_INFINITY);
  const started = Date.now();
  await assert.rejects(renameReplacing('a', 'b', { platform: 'win32', move: forever.move }), {
    code: 'EBUSY',
  });
  assert.equal(forever.calls(), 8);
  // Less some slack: a timer counts from the event loop's clock, which may lag Date.now().
  assert.ok(Date.now() - started >= 1200);
});

test('on Windows a rename is made durable by flushing the file under its new name; a folder renamed there, and any rename elsewhere, flushes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sedfs-rename-'));
  try {
    const flushed: string[] = [];
    const flush = async (path: string) => {
      flushed.push(path);
      await flushRenamed(path);
    };
    writeFileSync(join(dir, 'a.tmp'), 'a');
    await renameReplacing(join(dir, 'a.tmp'), join(dir, 'a'), { platform: 'win32', flush });
    writeFileSync(join(dir, 'b.tmp'), 'b');
    await renameReplacing(join(dir, 'b.tmp'), join(dir, 'b'), { platform: 'linux', flush });
    assert.deepEqual(flushed, [join(dir, 'a')]);
    // The real flush of a folder (which cannot be opened to write) is nothing, not a failure.
    mkdirSync(join(dir, 'staged'));
    await renameReplacing(join(dir, 'staged'), join(dir, 'folder'), { platform: 'win32', flush });
    assert.deepEqual(flushed, [join(dir, 'a'), join(dir, 'folder')]);
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'a');
    // A file that is not there is a real failure.
    await assert.rejects(flushRenamed(join(dir, 'gone')), { code: 'ENOENT' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('on Windows a removed file is first moved aside, so its name is free at once though another handle keeps the file pending deletion; elsewhere it is removed where it is', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sedfs-remove-'));
  try {
    const aside = join(dir, 'tmp');
    mkdirSync(aside);
    // A removal that leaves the file where it is, as Windows does while a reader has it open.
    const lingering: string[] = [];
    const pending = async (path: string) => {
      lingering.push(path);
    };
    writeFileSync(join(dir, 'chunk'), 'bytes');
    await removeFreeingName(join(dir, 'chunk'), aside, 'win32', pending);
    assert.equal(existsSync(join(dir, 'chunk')), false, 'the name is free');
    assert.deepEqual(
      readdirSync(aside).map((f) => join(aside, f)),
      lingering,
    );
    assert.match(lingering[0] ?? '', /chunk\.[0-9a-f]{12}\.removed$/);
    // Gone already: nothing to do.
    await removeFreeingName(join(dir, 'chunk'), aside, 'win32', pending);
    assert.equal(lingering.length, 1);
    writeFileSync(join(dir, 'other'), 'bytes');
    await removeFreeingName(join(dir, 'other'), aside, 'linux');
    assert.equal(existsSync(join(dir, 'other')), false);
    assert.equal(readdirSync(aside).length, 1, 'nothing moved aside elsewhere');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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

const failing = (code?: string) => async () => {
  throw Object.assign(new Error(`fsync: ${code ?? 'no code'}`), code ? { code } : {});
};

test('a directory fsync the file system refuses (EINVAL, ENOTSUP, EBADF, EISDIR) is carried on from and told once; any other failure still fails', async () => {
  for (const code of ['EINVAL', 'ENOTSUP', 'EBADF', 'EISDIR']) {
    const told: [string, string][] = [];
    const sync = syncDirWhereSupported((dir, c) => told.push([dir, c]), failing(code));
    await sync('/data/chunks/aa');
    await sync('/data/chunks/aa/bb');
    assert.deepEqual(told, [['/data/chunks/aa', code]], `${code}: told once, for the first directory`);
  }
  for (const code of ['EIO', 'ENOSPC', 'EROFS', 'EACCES', undefined]) {
    const told: string[] = [];
    const sync = syncDirWhereSupported((_dir, c) => told.push(c), failing(code));
    await assert.rejects(sync('/data'), { message: `fsync: ${code ?? 'no code'}` });
    assert.deepEqual(told, [], `${code ?? 'no code'}: a real failure, not a file system's limit`);
  }
  // Each directory is still tried after a refusal: a folder inside may be another mount.
  const asked: string[] = [];
  const sync = syncDirWhereSupported(
    () => undefined,
    async (dir) => {
      asked.push(dir);
      if (dir === '/fuse') await failing('EINVAL')();
    },
  );
  await sync('/fuse');
  await sync('/disk');
  assert.deepEqual(asked, ['/fuse', '/disk']);
  // A working sync is left alone.
  const fine = syncDirWhereSupported(
    () => assert.fail('nothing to tell'),
    async () => undefined,
  );
  await fine('/disk');
});

test('writeFileAtomic and mkdirDurable make their renames and new directories durable through the given sync, so one that carries on from a refusal lets them finish', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-nosync-'));
  try {
    const told: string[] = [];
    const sync = syncDirWhereSupported((_dir, code) => told.push(code), failing('EINVAL'));
    await mkdirDurable(join(root, 'a', 'b'), sync);
    await writeFileAtomic(join(root, 'a', 'b', 'f'), 'kept', 0o600, sync);
    assert.equal(readFileSync(join(root, 'a', 'b', 'f'), 'utf8'), 'kept');
    assert.deepEqual(told, ['EINVAL']);
    await assert.rejects(writeFileAtomic(join(root, 'a', 'g'), 'x', 0o600, failing('EIO')), {
      message: 'fsync: EIO',
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('writeFileAtomic makes the folders it creates for the file durable too, the deepest first, then the rename', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-atomic-dirs-'));
  try {
    const synced: string[] = [];
    await writeFileAtomic(join(root, 'a', 'b', 'f'), 'x', 0o600, async (d) => {
      synced.push(d);
    });
    assert.deepEqual(synced, [join(root, 'a'), root, join(root, 'a', 'b')]);
    synced.length = 0;
    await writeFileAtomic(join(root, 'a', 'b', 'g'), 'y', 0o600, async (d) => {
      synced.push(d);
    });
    assert.deepEqual(synced, [join(root, 'a', 'b')], 'folders that exist are not synced again');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/** Windows' whoami and icacls as sedfs runs them: each call kept in `ran`, whoami naming bob. */
function windowsTools(ran: string[][]) {
  return async (file: string, args: string[]) => {
    ran.push([file, ...args]);
    return file.endsWith('whoami.exe') ? '"pc\\bob","S-1-5-21-1-2-3-1001"\r\n' : '';
  };
}

test('on Windows a new data folder is restricted with icacls to this user (by SID), SYSTEM and Administrators, granting before inheritance goes', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-data-acl-'));
  const noSync = async () => undefined;
  try {
    const ran: string[][] = [];
    const run = windowsTools(ran);
    const dir = join(root, 'main');
    // Restricted before it has its name: a crash in between leaves no open folder there.
    let existedWhileRestricted = true;
    const watching = async (file: string, args: string[]) => {
      if (file.endsWith('icacls.exe')) existedWhileRestricted &&= existsSync(dir);
      return run(file, args);
    };
    assert.deepEqual(await makeDataFolder(dir, noSync, 'win32', watching), {});
    assert.equal(existedWhileRestricted, false, 'restricted before it was in place');
    assert.ok(statSync(dir).isDirectory());
    assert.deepEqual(readdirSync(root), ['main'], 'nothing left beside it');
    // Where Windows is (%SystemRoot%, often C:\WINDOWS), as sedfs looks for it.
    const system32 = win32.join(process.env.SystemRoot || 'C:\\Windows', 'System32');
    const staged = ran[1]?.[1] as string;
    assert.match(staged, /[/\\]main\.new-[0-9a-f]{8}$/);
    assert.deepEqual(ran, [
      [win32.join(system32, 'whoami.exe'), '/user', '/fo', 'csv', '/nh'],
      [
        win32.join(system32, 'icacls.exe'),
        staged,
        '/grant:r',
        '*S-1-5-21-1-2-3-1001:(OI)(CI)F',
        '*S-1-5-18:(OI)(CI)F',
        '*S-1-5-32-544:(OI)(CI)F',
      ],
      [win32.join(system32, 'icacls.exe'), staged, '/inheritance:r'],
    ]);
    ran.length = 0;
    await makeDataFolder(dir, noSync, 'win32', run);
    assert.deepEqual(ran, [], 'a folder that existed keeps the permissions someone gave it');
    await makeDataFolder(join(root, 'elsewhere'), noSync, 'linux', run);
    assert.deepEqual(ran, [], 'elsewhere file modes do this');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a data folder icacls could not restrict is still made and usable, and the failure is given back for the log', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-data-acl-'));
  try {
    const ran: string[] = [];
    const failing = async (file: string) => {
      ran.push(file);
      if (file.endsWith('icacls.exe')) throw new Error('icacls: Access is denied.');
      return '"pc\\bob","S-1-5-21-1-2-3-1001"';
    };
    const dir = join(root, 'fs1');
    const { notRestricted } = await makeDataFolder(dir, async () => undefined, 'win32', failing);
    assert.match(notRestricted?.message ?? '', /Access is denied/);
    assert.equal(
      ran.filter((f) => f.endsWith('icacls.exe')).length,
      1,
      'inheritance is not removed after a failed grant',
    );
    writeFileSync(join(dir, 'server-id'), 'x');
    const { notRestricted: noSid } = await makeDataFolder(
      join(root, 'fs2'),
      async () => undefined,
      'win32',
      async () => 'INFO: no',
    );
    assert.match(noSid?.message ?? '', /named no SID/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('on Windows a data folder named with a trailing separator (D:\\data\\) is restricted itself, staged beside it, not inside it', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-data-acl-'));
  try {
    const ran: string[][] = [];
    const dir = join(root, 'data');
    assert.deepEqual(await makeDataFolder(`${dir}/`, async () => undefined, 'win32', windowsTools(ran)), {});
    const restricted = ran.filter(([file]) => file?.endsWith('icacls.exe')).map(([, path]) => path as string);
    assert.ok(statSync(dir).isDirectory());
    assert.deepEqual(readdirSync(root), ['data'], 'nothing left beside it');
    assert.deepEqual(readdirSync(dir), [], 'nothing staged inside it');
    assert.equal(restricted.length, 2);
    for (const path of restricted)
      assert.match(path, /[/\\]data\.new-[0-9a-f]{8}$/, 'the folder itself was restricted');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('on Windows, opening a data folder removes what a start that crashed while making it left beside it: empty staged folders over ten minutes old, nothing else', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-data-acl-'));
  try {
    const old = new Date(Date.now() - 11 * 60_000);
    const staged = (name: string, opts: { old?: boolean; file?: boolean } = {}) => {
      const path = join(root, name);
      mkdirSync(path);
      if (opts.file) writeFileSync(join(path, 'server-id'), 'x');
      if (opts.old) utimesSync(path, old, old);
    };
    staged('data.new-0a1b2c3d', { old: true });
    staged('data.new-11112222');
    staged('data.new-33334444', { old: true, file: true });
    staged('other.new-55556666', { old: true });
    staged('data.new-notahex9', { old: true });
    staged('data.new-99998888', { old: true });
    mkdirSync(join(root, 'data'));
    // The folder exists already (a start after the one that crashed made it): still cleaned.
    await makeDataFolder(join(root, 'data'), async () => undefined, 'win32', windowsTools([]));
    assert.ok(!existsSync(join(root, 'data.new-99998888')));
    rmSync(join(root, 'data'), { recursive: true });
    await makeDataFolder(join(root, 'data'), async () => undefined, 'win32', windowsTools([]));
    assert.deepEqual(readdirSync(root).sort(), [
      'data',
      'data.new-11112222',
      'data.new-33334444',
      'data.new-notahex9',
      'other.new-55556666',
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
