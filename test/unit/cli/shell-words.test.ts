import assert from 'node:assert/strict';
import { test } from 'node:test';
import { editorCommand } from '../../../src/cli/edit.js';
import { escapeWord, splitWords } from '../../../src/cli/shell.js';

test('shell lines split on spaces, honouring quotes and backslashes', () => {
  assert.deepEqual(splitWords('put  "my file.txt" /docs/', 'linux'), ['put', 'my file.txt', '/docs/']);
  assert.deepEqual(splitWords("write /n 'it''s'", 'linux'), ['write', '/n', 'its']);
  assert.deepEqual(splitWords('cat my\\ note.txt', 'linux'), ['cat', 'my note.txt']);
  assert.deepEqual(splitWords('write /a ""'), ['write', '/a', '']);
  assert.throws(() => splitWords('cat "open'), { code: 'SEDFS_ERR_BAD_REQUEST' });
});

test('a completed name, escaped, splits back into the same word', () => {
  for (const name of ['plain', 'with space', "it's", 'back\\slash', 'q"uote']) {
    assert.deepEqual(splitWords(`cat ${escapeWord(name, 'linux')}`, 'linux'), ['cat', name]);
  }
});

test('on Windows a backslash is a path separator, kept as typed, and completed names are quoted', () => {
  assert.deepEqual(splitWords('put C:\\Users\\me\\a.txt /a.txt', 'win32'), [
    'put',
    'C:\\Users\\me\\a.txt',
    '/a.txt',
  ]);
  assert.deepEqual(splitWords('put "C:\\My Files\\a.txt"', 'win32'), ['put', 'C:\\My Files\\a.txt']);
  assert.deepEqual(splitWords('write /n "say \\"hi\\""', 'win32'), ['write', '/n', 'say "hi"']);
  for (const name of ['plain', 'with space', "it's", 'back\\slash', 'q"uote', 'C:\\x y\\']) {
    assert.deepEqual(splitWords(`cat ${escapeWord(name, 'win32')}`, 'win32'), ['cat', name], name);
  }
});

test('the editor comes from VISUAL, then EDITOR, split into words; else a platform default', () => {
  assert.deepEqual(editorCommand({ VISUAL: 'code --wait', EDITOR: 'nano' }, 'linux'), ['code', '--wait']);
  assert.deepEqual(editorCommand({ EDITOR: 'nano' }, 'linux'), ['nano']);
  assert.deepEqual(editorCommand({}, 'linux'), ['vi']);
  assert.deepEqual(editorCommand({}, 'win32'), ['notepad']);
  // No shell: metacharacters stay literal words.
  assert.deepEqual(editorCommand({ EDITOR: 'vi; rm -rf ~' }, 'linux'), ['vi;', 'rm', '-rf', '~']);
});
