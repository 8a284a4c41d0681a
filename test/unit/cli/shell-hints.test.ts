import assert from 'node:assert/strict';
import { test } from 'node:test';
import { devStartupLines } from '../../../src/cli/dev.js';
import { startupLines } from '../../../src/cli/main.js';
import { setVariables, startFileServer } from '../../../src/cli/shell-hints.js';

const main = {
  url: 'https://127.0.0.1:7000',
  urls: ['https://127.0.0.1:7000'],
  caFingerprint: 'ab:cd',
  joinToken: 'token',
  joinTokenCreated: false,
  joinString: 'sedfs://token@127.0.0.1:7000#ab:cd',
};

test('sedfs dev tells a POSIX shell to export SEDFS_MAIN, and on Windows gives the PowerShell and cmd forms instead', () => {
  const posix = devStartupLines(main, 3, '/tmp/dev', 'linux').join('\n');
  assert.match(
    posix,
    /In another terminal: {2}export SEDFS_MAIN=https:\/\/127\.0\.0\.1:7000 SEDFS_CA_FINGERPRINT=ab:cd\n/,
  );
  const windows = devStartupLines(main, 3, 'C:\\dev', 'win32').join('\n');
  assert.doesNotMatch(windows, /export /);
  assert.ok(
    windows.includes(
      `(PowerShell) $env:SEDFS_MAIN = 'https://127.0.0.1:7000'; $env:SEDFS_CA_FINGERPRINT = 'ab:cd'\n`,
    ),
    windows,
  );
  assert.ok(
    windows.includes(`(cmd) set "SEDFS_MAIN=https://127.0.0.1:7000" & set "SEDFS_CA_FINGERPRINT=ab:cd"\n`),
  );
});

test('main tells how to start a file server from its join file in the shells of its platform', () => {
  const posix = startupLines(main, '/srv/my data', 'linux');
  assert.ok(
    posix.includes(`Start a file server: sedfs fileserver --join "$(cat '/srv/my data/join')"`),
    posix.join('\n'),
  );
  const windows = startupLines(main, 'C:\\sedfs', 'win32').join('\n');
  assert.doesNotMatch(windows, /\$\(cat/);
  assert.match(windows, /\(PowerShell\) sedfs fileserver --join \(Get-Content '[^']*join'\)\n/);
  assert.match(windows, /\(cmd\) +set \/p SEDFS_JOIN=<"[^"]*join" & sedfs fileserver$/);
});

test('values the user typed are quoted for the shell that reads them', () => {
  assert.deepEqual(setVariables({ A: "it's" }, 'linux'), [{ shell: undefined, text: `export A='it'\\''s'` }]);
  assert.equal(setVariables({ A: "it's" }, 'win32')[0]?.text, `$env:A = 'it''s'`);
  assert.equal(
    startFileServer("C:\\Bob's\\join", 'win32')[0]?.text,
    `sedfs fileserver --join (Get-Content 'C:\\Bob''s\\join')`,
  );
});
