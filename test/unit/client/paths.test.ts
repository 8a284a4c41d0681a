import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkName,
  checkStoredName,
  childPath,
  isStorableName,
  joinPath,
  splitPath,
} from '../../../src/client/paths.js';

test('paths split into names from home, resolving . and .. locally', () => {
  assert.deepEqual(splitPath('/a/b/c'), ['a', 'b', 'c']);
  assert.deepEqual(splitPath('b/./c', '/a'), ['a', 'b', 'c']);
  assert.deepEqual(splitPath('../x', '/a/b'), ['a', 'x']);
  assert.deepEqual(splitPath('../../..', '/a'), []);
  assert.equal(joinPath(['a', 'b']), '/a/b');
  assert.equal(joinPath([]), '/');
});

test("a child's path is its folder's path and its name, as joining the folder's names with it gives", () => {
  for (const [parent, name] of [
    ['/', 'a'],
    ['/a', 'b'],
    ['/a/b c', 'd'],
  ] as const)
    assert.equal(childPath(parent, name), joinPath([...splitPath(parent), name]));
  assert.equal(childPath('/', 'a'), '/a');
  assert.equal(childPath('/a/b', 'c'), '/a/b/c');
});

test('names are NFC, at most 255 UTF-8 bytes, and never empty, . or ..', () => {
  assert.equal(checkName('cafe\u0301'), 'caf\u00e9');
  assert.equal(checkName('x'.repeat(255)), 'x'.repeat(255));
  assert.throws(() => checkName('x'.repeat(256)), { code: 'SEDFS_ERR_BAD_REQUEST' });
  assert.throws(() => checkName('é'.repeat(128)), { code: 'SEDFS_ERR_BAD_REQUEST' });
  for (const bad of ['', '.', '..', 'a/b', 'nul\0'])
    assert.throws(() => checkName(bad), { code: 'SEDFS_ERR_BAD_REQUEST' });
});

test('a stored name that could lead out of a folder is refused on every system', () => {
  for (const platform of ['linux', 'darwin', 'win32'] as const) {
    for (const bad of ['', '.', '..', '../x', 'a/b', 'nul\0', 'x'.repeat(256)]) {
      assert.throws(
        () => checkStoredName(bad, platform),
        { code: 'SEDFS_ERR_BAD_NAME' },
        `${platform} ${bad}`,
      );
      assert.equal(isStorableName(bad, platform), false);
    }
    for (const good of ['report.pdf', 'ünïcødé 文件', '.hidden', '..x'])
      assert.equal(checkStoredName(good, platform), good);
  }
  // Without a platform only the remote rules apply.
  assert.equal(checkStoredName('a:b'), 'a:b');
});

test('names Windows cannot store are refused there as local file names, and kept elsewhere', () => {
  for (const bad of [
    'a\\..\\..\\evil.bat',
    'c:evil',
    'a*b',
    'what?',
    'a"b',
    '<x>',
    'a|b',
    'tab\there',
    'CON',
    'nul.txt',
    'Com1',
    'LPT9.log',
    'con .txt',
    'nul  .log',
    'CONIN$',
    'conout$.x',
    'ends.',
    'ends ',
  ]) {
    assert.throws(() => checkStoredName(bad, 'win32'), { code: 'SEDFS_ERR_BAD_NAME' }, bad);
    assert.equal(checkStoredName(bad, 'linux'), bad);
  }
  for (const good of ['console.log', 'nullable', 'com10', 'a.b c', 'con x.txt', 'conin'])
    assert.equal(checkStoredName(good, 'win32'), good);
});

test('names shaped as Windows short (8.3) names, which could open another file there, are refused on Windows only, saying how to get them', () => {
  for (const bad of ['REPORT~1.PDF', 'progra~1', 'a~1', 'backu~12.txt', 'AB12C~1.X', 'x~123456'])
    assert.throws(
      () => checkStoredName(bad, 'win32'),
      (err: Error & { code?: string }) =>
        err.code === 'SEDFS_ERR_BAD_NAME' &&
        err.message ===
          `${JSON.stringify(bad)} has the shape of a Windows short (8.3) name, which could be another file's here: get it to a name of your own (sedfs get REMOTE LOCAL-FILE)`,
      bad,
    );
  for (const bad of ['REPORT~1.PDF', 'a~1']) assert.equal(checkStoredName(bad, 'linux'), bad);
  // Not a short name's shape: too long a stem or extension, no number, a second dot.
  for (const good of ['report~1.backup', 'longfilename~1.txt', 'my~file.txt', '~1x', 'a~1.b.c', 'v1.0~2'])
    assert.equal(checkStoredName(good, 'win32'), good, good);
});
