import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ClusterClient } from '../../../src/client/cluster-client.js';

test('a client closed twice resolves both times: a second close (a finally and an after hook) does not throw', async () => {
  const client = new ClusterClient('https://127.0.0.1:1', {});
  await client.close();
  await assert.doesNotReject(client.close());
  await assert.doesNotReject(Promise.all([client.close(), client.close()]));
});

test('a main from before batch tickets, refusing the unknown property, is asked again for a ticket per chunk, and from then on only so', async () => {
  const asked: { batchTickets?: boolean; chunks: { id: string }[] }[] = [];
  // An older main: its schema knows no `batchTickets`, and it refuses what it does not know.
  const main = createServer((req, res) => {
    let text = '';
    req.on('data', (d) => {
      text += d;
    });
    req.on('end', () => {
      const body = JSON.parse(text) as (typeof asked)[number];
      asked.push(body);
      res.setHeader('content-type', 'application/json');
      if ('batchTickets' in body) {
        res.statusCode = 400;
        res.end(
          JSON.stringify({
            error: {
              code: 'SEDFS_ERR_BAD_REQUEST',
              message: 'invalid request: body must NOT have additional properties',
            },
          }),
        );
        return;
      }
      const servers = [{ id: 'a'.repeat(32), url: 'http://127.0.0.1:1' }];
      res.end(
        JSON.stringify({
          placements: body.chunks.map((c) => ({ chunk: c.id, servers, ticket: `t-${c.id}` })),
        }),
      );
    });
  });
  await new Promise<void>((resolve) => main.listen(0, '127.0.0.1', resolve));
  const client = new ClusterClient(`http://127.0.0.1:${(main.address() as AddressInfo).port}`, {});
  const small = (n: number) => ({ id: n.toString(16).padStart(64, '0'), size: 4096 });
  try {
    for (const round of [0, 1]) {
      const answer = await client.place('u'.repeat(32), [small(2 * round + 1), small(2 * round + 2)]);
      assert.deepEqual(
        answer.placements.map((p) => p.ticket),
        [`t-${small(2 * round + 1).id}`, `t-${small(2 * round + 2).id}`],
      );
    }
    assert.deepEqual(
      asked.map((b) => b.batchTickets ?? false),
      [true, false, false],
    );
  } finally {
    await client.close();
    main.close();
  }
});
