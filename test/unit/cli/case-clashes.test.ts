import assert from 'node:assert/strict';
import { test } from 'node:test';
import { refuseCaseClashes } from '../../../src/cli/transfer.js';

test('a folder whose names differ only in case is refused where file names ignore case, and kept on Linux', () => {
  for (const platform of ['win32', 'darwin'] as const) {
    assert.throws(() => refuseCaseClashes('/docs', ['Report.txt', 'b', 'report.TXT'], platform), {
      code: 'SEDFS_ERR_BAD_NAME',
      message: /"Report.txt" and "report.TXT" in \/docs differ only in letter case/,
    });
    // The same letters composed or not (é as one code point or e + accent) are one name too.
    assert.throws(() => refuseCaseClashes('/d', ['caf\u00e9', 'CAFE\u0301'], platform), {
      code: 'SEDFS_ERR_BAD_NAME',
    });
    refuseCaseClashes('/docs', ['a.txt', 'b.txt', 'a.txt.bak'], platform);
  }
  refuseCaseClashes('/docs', ['Report.txt', 'report.TXT'], 'linux');
});

test('names that Windows folds to one by upper case are a clash there (σ/ς, ı/i, ſ/s, µ/μ); ß and ss are not', () => {
  for (const [a, b] of [
    ['σ.txt', 'ς.txt'],
    ['ıd', 'id'],
    ['ſun', 'sun'],
    ['µ', 'μ'],
  ])
    assert.throws(() => refuseCaseClashes('/dir', [a as string, b as string], 'win32'), {
      code: 'SEDFS_ERR_BAD_NAME',
    });
  refuseCaseClashes('/dir', ['straße', 'strasse'], 'win32');
});
