import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isGone } from '../../../src/common/files.js';

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
