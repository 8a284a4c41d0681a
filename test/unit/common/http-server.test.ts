import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { MainCalls } from '../../../src/client/main-calls.js';
import { createHttpApp } from '../../../src/common/http-server.js';
import { SedfsError } from '../../../src/protocol/errors.js';

test('a big body refused before it is read while main installs keys there gets its answer (503, Retry-After), not a broken connection, and is logged at debug only', async () => {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const app = createHttpApp(log);
  app.post(
    '/v1/nodes/:id/rekey',
    {
      bodyLimit: 16 * 1024 * 1024,
      onRequest: async () => {
        throw new SedfsError('SEDFS_ERR_KEYS_INSTALLING');
      },
    },
    async () => ({ done: true }),
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const main = new MainCalls(`http://127.0.0.1:${port}`);
  try {
    // 8 MiB the client is still sending when the answer comes.
    await assert.rejects(
      main.call('POST', '/v1/nodes/x/rekey', { pad: 'a'.repeat(8 * 1024 * 1024) }),
      (err: SedfsError) => {
        assert.equal(err.code, 'SEDFS_ERR_KEYS_INSTALLING');
        assert.equal(err.details?.retryAfterS, 1);
        return true;
      },
    );
    const told = lines.filter((l) => /request (refused|failed)/.test(l.msg));
    assert.ok(told.length > 0);
    assert.ok(
      told.every((l) => l.level === 20),
      'at debug',
    );
  } finally {
    await main.close();
    await app.close();
  }
});
