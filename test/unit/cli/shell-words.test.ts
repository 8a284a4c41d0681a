import assert from 'node:assert/strict';
import { test } from 'node:test';
import { editFileName, editorLaunch } from '../../../src/cli/edit.js';
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
  for (const name of ['plain', 'with space', "it's", 'back\\slash', 'q"uote', 'C:\\x y\\', "it's\\", `'"'`]) {
    assert.deepEqual(splitWords(`cat ${escapeWord(name, 'win32')}`, 'win32'), ['cat', name], name);
  }
});

test('the editor comes from VISUAL, then EDITOR, split into words without a shell; else vi', () => {
  const words = (env: NodeJS.ProcessEnv) => {
    const l = editorLaunch('/tmp/x/notes.txt', env, 'linux');
    return [l.command, ...l.args];
  };
  assert.deepEqual(words({ VISUAL: 'code --wait', EDITOR: 'nano' }), ['code', '--wait', '/tmp/x/notes.txt']);
  assert.deepEqual(words({ EDITOR: 'nano' }), ['nano', '/tmp/x/notes.txt']);
  assert.deepEqual(words({}), ['vi', '/tmp/x/notes.txt']);
  // No shell: metacharacters stay literal words.
  assert.deepEqual(words({ EDITOR: 'vi; rm -rf ~' }), ['vi;', 'rm', '-rf', '~', '/tmp/x/notes.txt']);
});

test('on Windows the editor setting runs through cmd.exe as written, and the copy is named file plus its extension', () => {
  const file = 'C:\\Users\\A B\\Temp\\sedfs-edit-1\\file.md';
  assert.deepEqual(editorLaunch(file, {}, 'win32'), {
    command: 'notepad.exe',
    args: [file],
    windowsVerbatimArguments: false,
  });
  assert.deepEqual(
    editorLaunch(file, { EDITOR: 'code --wait', ComSpec: 'C:\\Windows\\system32\\cmd.exe' }, 'win32'),
    {
      command: 'C:\\Windows\\system32\\cmd.exe',
      args: ['/d', '/s', '/c', `"code --wait "${file}""`],
      windowsVerbatimArguments: true,
    },
  );
  assert.equal(editFileName('a & b %PATH%.md', 'win32'), 'file.md');
  assert.equal(editFileName('no extension', 'win32'), 'file');
  assert.equal(editFileName('a & b.md', 'linux'), 'a & b.md');
  assert.equal(editFileName('..', 'linux'), 'file');
});
