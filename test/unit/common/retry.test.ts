import assert from 'node:assert/strict';
import { test } from 'node:test';
import { retryWhileBusy } from '../../../src/common/retry.js';
import { SedfsError } from '../../../src/protocol/errors.js';

test('a big request main refused as busy at every try fails saying how long it waited, not "try again shortly"', async () => {
  let tries = 0;
  await assert.rejects(
    retryWhileBusy(async () => {
      tries++;
      throw new SedfsError('SEDFS_ERR_BUSY');
    }, 2),
    (err: SedfsError) => {
      assert.equal(err.code, 'SEDFS_ERR_BUSY');
      assert.match(
        err.message,
        /^main was reading as many big request bodies as it may at once for \d+ s \(2 tries\)/,
      );
      assert.doesNotMatch(err.message, /try again shortly/);
      return true;
    },
  );
  assert.equal(tries, 2);
  // Any other error at once, as it came.
  await assert.rejects(
    retryWhileBusy(async () => {
      throw new SedfsError('SEDFS_ERR_NOT_FOUND', 'gone');
    }),
    { code: 'SEDFS_ERR_NOT_FOUND', message: 'gone' },
  );
});
