import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { Agent } from 'undici';
import { requestJson } from '../../../src/common/http-client.js';
import { retryWhileBusy, retryWhileInstalling } from '../../../src/common/retry.js';
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

test("a busy request is tried again no sooner than main's Retry-After, and its Retry-After header reaches the error", async () => {
  // A server refusing as main does: 503, SEDFS_ERR_BUSY, Retry-After.
  const server = createServer((_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
    res.end(JSON.stringify(new SedfsError('SEDFS_ERR_BUSY').toJSON()));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const agent = new Agent();
  try {
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/commit`;
    await assert.rejects(requestJson(agent, url), (err: SedfsError) => {
      assert.equal(err.code, 'SEDFS_ERR_BUSY');
      assert.equal(err.details?.retryAfterS, 1);
      return true;
    });
  } finally {
    await agent.close();
    server.close();
  }
  // The shortest backoff draw (0.19 s) is lengthened to what main asked for.
  const times: number[] = [];
  await assert.rejects(
    retryWhileBusy(
      async () => {
        times.push(performance.now());
        throw new SedfsError('SEDFS_ERR_BUSY', undefined, { retryAfterS: 0.4 });
      },
      2,
      () => 0,
    ),
  );
  // Less some slack (a timer counts from the event loop's clock, which may lag), far above 190.
  assert.ok(
    (times[1] as number) - (times[0] as number) >= 370,
    `tried again after ${(times[1] as number) - (times[0] as number)} ms`,
  );
});

test('a request main refuses while it installs new keys there is sent again until it goes through; any other error at once; after every try, a clear error', async () => {
  const installing = () => new SedfsError('SEDFS_ERR_KEYS_INSTALLING');
  let tries = 0;
  assert.equal(
    await retryWhileInstalling(
      async () => {
        if (++tries < 3) throw installing();
        return 'done';
      },
      5,
      () => 0,
    ),
    'done',
  );
  assert.equal(tries, 3);
  tries = 0;
  await assert.rejects(
    retryWhileInstalling(async () => {
      tries++;
      throw new SedfsError('SEDFS_ERR_NOT_FOUND', 'gone');
    }),
    { code: 'SEDFS_ERR_NOT_FOUND', message: 'gone' },
  );
  assert.equal(tries, 1);
  await assert.rejects(
    retryWhileInstalling(
      async () => {
        throw installing();
      },
      2,
      () => 0,
    ),
    (err: SedfsError) =>
      err.code === 'SEDFS_ERR_KEYS_INSTALLING' &&
      /^main was still installing new keys here after an unshare \d+ s later: try again later$/.test(
        err.message,
      ),
  );
});
