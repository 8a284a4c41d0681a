import assert from 'node:assert/strict';
import { test } from 'node:test';
import { askIfInteractive, isMintty } from '../../../src/cli/prompt.js';

const gitBash = { TERM: 'xterm', MSYSTEM: 'MINGW64', TERM_PROGRAM: 'mintty' };

test('in Git Bash (mintty, a pipe and not a console) a passphrase is not asked for: the error says how to set SEDFS_PASSPHRASE unseen', async () => {
  await assert.rejects(
    askIfInteractive('Passphrase: ', 'SEDFS_PASSPHRASE', true, {
      isTTY: false,
      env: gitBash,
      platform: 'win32',
    }),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'SEDFS_ERR_CONFIG');
      assert.match(err.message, /^missing setting: SEDFS_PASSPHRASE\. Git Bash's terminal \(mintty\)/);
      assert.match(err.message, /read -rsp 'Passphrase: ' SEDFS_PASSPHRASE && export SEDFS_PASSPHRASE/);
      assert.match(err.message, /PowerShell, cmd or Windows Terminal/);
      return true;
    },
  );
  // Another secret: its own variable and question (passwd's new passphrase, a join token).
  for (const [question, howToSet, variable] of [
    ['New passphrase: ', 'SEDFS_NEW_PASSPHRASE', 'SEDFS_NEW_PASSPHRASE'],
    ['Cluster join token: ', '--join, --join-token or SEDFS_JOIN_TOKEN', 'SEDFS_JOIN_TOKEN'],
  ] as const)
    await assert.rejects(
      askIfInteractive(question, howToSet, true, { isTTY: false, env: gitBash, platform: 'win32' }),
      (err: Error) =>
        err.message.includes(`read -rsp '${question.trim()} ' ${variable} && export ${variable})`) &&
        !err.message.includes('SEDFS_PASSPHRASE &&'),
    );
  // Not a secret: set it, no hidden-typing recipe.
  await assert.rejects(
    askIfInteractive('Main: ', '--main URL or SEDFS_MAIN', false, {
      isTTY: false,
      env: gitBash,
      platform: 'win32',
    }),
    (err: Error) => /mintty/.test(err.message) && !/read -rsp/.test(err.message),
  );
});

test('a script with no terminal at all is told which setting is missing, nothing about mintty', async () => {
  for (const platform of ['linux', 'win32'] as const)
    await assert.rejects(
      askIfInteractive('Passphrase: ', 'SEDFS_PASSPHRASE', true, { isTTY: false, env: {}, platform }),
      { code: 'SEDFS_ERR_CONFIG', message: 'missing setting: SEDFS_PASSPHRASE (no terminal to ask on)' },
    );
});

test('mintty is told apart only on Windows and only when stdin is not a console', () => {
  assert.equal(isMintty({ isTTY: false, env: gitBash, platform: 'win32' }), true);
  assert.equal(
    isMintty({ isTTY: false, env: { MSYSTEM: 'MINGW64', TERM: 'xterm' }, platform: 'win32' }),
    true,
  );
  assert.equal(
    isMintty({ isTTY: true, env: gitBash, platform: 'win32' }),
    false,
    'Git Bash in Windows Terminal',
  );
  assert.equal(isMintty({ isTTY: false, env: gitBash, platform: 'linux' }), false);
  assert.equal(isMintty({ isTTY: false, env: { TERM: 'xterm' }, platform: 'win32' }), false);
});
