import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { removeUnfinishedBackup } from '../../../src/main-server/backup.js';

const root = mkdtempSync(join(tmpdir(), 'sedfs-backup-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('an unfinished backup is removed with what it holds, and nothing is said', () => {
  const dest = join(root, 'done');
  mkdirSync(join(dest, 'tls'), { recursive: true });
  writeFileSync(join(dest, 'tls', 'ca-key.pem'), 'key');
  assert.equal(removeUnfinishedBackup(dest), undefined);
  assert.equal(existsSync(dest), false);
});

test('an unfinished backup that cannot be removed (a file held on Windows) is named, with why and that it holds keys, and tried again first', () => {
  const dest = join(root, 'held');
  let options: { maxRetries?: number } | undefined;
  const said = removeUnfinishedBackup(dest, ((_path: string, opts: { maxRetries?: number }) => {
    options = opts;
    throw Object.assign(new Error('resource busy or locked'), { code: 'EBUSY' });
  }) as typeof rmSync);
  assert.equal(
    said,
    `the unfinished backup at ${dest} could not be removed (EBUSY): it holds main's keys; remove it yourself`,
  );
  assert.ok((options?.maxRetries ?? 0) > 0, 'tried again');
});
