import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { checkTypedRemotePaths, windowsPathSlip } from '../../../src/cli/typed-paths.js';

/** A program with verbs shaped as sedfs's, checking typed paths as on `platform`; what ran, or the usage error. */
async function typed(platform: NodeJS.Platform, ...argv: string[]): Promise<string> {
  let ran = '';
  let said = '';
  const program = new Command()
    .exitOverride()
    .configureOutput({ writeErr: (s) => (said += s), writeOut: () => undefined });
  program.hook('preAction', (_p, verb) => checkTypedRemotePaths(verb, platform));
  program.command('put <local> [remote]').action((l: string, r?: string) => {
    ran = `put ${l} ${r}`;
  });
  program.command('mv <src> <dst>').action((s: string, d: string) => {
    ran = `mv ${s} ${d}`;
  });
  program.command('share <path> <user>').action((p: string, u: string) => {
    ran = `share ${p} ${u}`;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch {
    return `refused: ${said.trim()}`;
  }
  return ran;
}

test('on Windows a remote path typed with \\ is refused, saying to write it with /', async () => {
  assert.equal(
    await typed('win32', 'mv', '\\work\\a.txt', '/b'),
    'refused: error: remote paths use / between names, not \\: write /work/a.txt',
  );
  assert.match(await typed('win32', 'share', 'work\\in', 'bob'), /^refused: .*write work\/in$/);
  // A local path takes \ as Windows does; only the remote one is checked.
  assert.equal(
    await typed('win32', 'put', 'C:\\Users\\me\\a.txt', '/docs/'),
    'put C:\\Users\\me\\a.txt /docs/',
  );
});

test("on Windows a remote path that is a drive's path (Git Bash's rewriting of /photos) is refused, saying how to keep it", async () => {
  const refused = await typed('win32', 'put', 'a.txt', 'C:/Program Files/Git/photos');
  assert.match(
    refused,
    /^refused: error: C:\/Program Files\/Git\/photos is a path on this computer, not a remote one/,
  );
  assert.match(refused, /write \/\/photos, or set MSYS_NO_PATHCONV=1/);
});

test('elsewhere \\ is a character of a name like any other, and nothing is refused', async () => {
  assert.equal(await typed('linux', 'mv', 'a\\b', 'C:/x'), 'mv a\\b C:/x');
  assert.equal(await typed('darwin', 'share', 'a\\b', 'bob'), 'share a\\b bob');
  assert.equal(windowsPathSlip('a\\b', 'linux'), undefined);
  assert.equal(windowsPathSlip('/photos/2026', 'win32'), undefined);
  assert.equal(windowsPathSlip('notes:today', 'win32'), undefined);
});
