import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkName, joinPath, splitPath } from '../../../src/client/paths.js';

test('paths split into names from home, resolving . and .. locally', () => {
  assert.deepEqual(splitPath('/a/b/c'), ['a', 'b', 'c']);
  assert.deepEqual(splitPath('b/./c', '/a'), ['a', 'b', 'c']);
  assert.deepEqual(splitPath('../x', '/a/b'), ['a', 'x']);
  assert.deepEqual(splitPath('../../..', '/a'), []);
  assert.equal(joinPath(['a', 'b']), '/a/b');
  assert.equal(joinPath([]), '/');
});

test('names are NFC, at most 255 UTF-8 bytes, and never empty, . or ..', () => {
  assert.equal(checkName('cafe\u0301'), 'caf\u00e9');
  assert.equal(checkName('x'.repeat(255)), 'x'.repeat(255));
  assert.throws(() => checkName('x'.repeat(256)), { code: 'SEDFS_ERR_BAD_REQUEST' });
  assert.throws(() => checkName('é'.repeat(128)), { code: 'SEDFS_ERR_BAD_REQUEST' });
  for (const bad of ['', '.', '..', 'a/b', 'nul\0'])
    assert.throws(() => checkName(bad), { code: 'SEDFS_ERR_BAD_REQUEST' });
});
