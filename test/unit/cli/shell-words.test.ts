import assert from 'node:assert/strict';
import { test } from 'node:test';
import { editFileName, editorLaunch } from '../../../src/cli/edit.js';
import { completionOf, escapeWord, splitWords } from '../../../src/cli/shell.js';

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

test('completion reads the last word as typed, quotes and escapes included, and continues it in the same quoting', () => {
  for (const platform of ['linux', 'win32'] as const) {
    const cases: [string, string, string, string, boolean][] = [
      // line typed so far, folder listed, name start, the name completed, is a folder
      ['ls ', '.', '', 'my dir', true],
      ['cat my', '.', 'my', 'my file.txt', false],
      ['cat "my di', '.', 'my di', 'my dir', true],
      ['cat "my dir/no', 'my dir/', 'no', "note's.txt", false],
      ["cat 'it", '.', 'it', "it's here", false],
      ['put a /do', '/', 'do', 'docs', true],
    ];
    if (platform === 'linux') cases.push(['cat my\\ dir/n', 'my dir/', 'n', 'notes "1".txt', false]);
    for (const [line, folder, prefix, name, isFolder] of cases) {
      const c = completionOf(line, platform);
      assert.equal(c.folder, folder, `${platform}: ${line}`);
      assert.equal(c.prefix, prefix, `${platform}: ${line}`);
      const done = c.complete(name, isFolder);
      // readline keeps what was typed and adds the rest: the completion must start with it.
      assert.ok(done.startsWith(c.typed) && line.endsWith(c.typed), `${platform}: ${line} -> ${done}`);
      const completed = line.slice(0, line.length - c.typed.length) + done;
      const want = `${folder === '.' ? '' : folder}${name}${isFolder ? '/' : ''}`;
      if (isFolder) {
        // A folder's completion may leave a quote open for the next name; closed, it reads back.
        const open = completed.match(/["']/g)?.length ?? 0;
        const closed = open % 2 === 1 ? completed + (/"[^"]*$/.test(completed) ? '"' : "'") : completed;
        assert.equal(splitWords(closed, platform).at(-1), want, `${platform}: ${line}`);
      } else
        assert.equal(splitWords(completed, platform).at(-1), want, `${platform}: ${line} -> ${completed}`);
    }
  }
});

test('an unquoted ~ alone or before a separator is the home folder, as a POSIX shell takes it; quoted, or inside a word, it is a name', () => {
  assert.deepEqual(splitWords('put ~/todo.txt ~ /notes/', 'linux', '/home/me'), [
    'put',
    '/home/me/todo.txt',
    '/home/me',
    '/notes/',
  ]);
  assert.deepEqual(splitWords('put \'~/a\' "~/b" ~x a~/c', 'linux', '/home/me'), [
    'put',
    '~/a',
    '~/b',
    '~x',
    'a~/c',
  ]);
  assert.deepEqual(splitWords('put ~\\a.txt ~/b.txt', 'win32', 'C:\\Users\\Me Too'), [
    'put',
    'C:\\Users\\Me Too\\a.txt',
    'C:\\Users\\Me Too/b.txt',
  ]);
  // cd's home is the remote one.
  assert.deepEqual(splitWords('cd ~/docs', 'linux', '/'), ['cd', '//docs']);
});
