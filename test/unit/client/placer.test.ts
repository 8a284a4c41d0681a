import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterClient } from '../../../src/client/cluster-client.js';
import { Placer } from '../../../src/client/placer.js';

/** A main that records every placement request, answers as `answer` says, and may warn. */
function fakeMain(answer: 'place' | 'fail' | 'short' = 'place', warning?: string) {
  const requests: string[][] = [];
  const client = {
    place: async (_upload: string, chunks: { id: string }[]) => {
      requests.push(chunks.map((c) => c.id));
      if (answer === 'fail') throw new Error('main is down');
      const placed = answer === 'short' ? chunks.slice(1) : chunks;
      return {
        placements: placed.map((c) => ({
          chunk: c.id,
          servers: [{ id: 's1', url: 'u' }],
          ticket: `t-${c.id}`,
        })),
        ...(warning ? { warning } : {}),
      };
    },
  };
  return { client: client as unknown as ClusterClient, requests };
}

test('the chunk about to be sent is placed with every sealed chunk not yet placed, in one request', async () => {
  const main = fakeMain();
  const placer = new Placer(main.client, 'u1');
  placer.add(0, { id: 'a', size: 10 });
  placer.add(1, { id: 'b', size: 10 });
  placer.add(2, { id: 'c', size: 10 });
  assert.deepEqual(main.requests, [], 'nothing is asked before a chunk is about to be sent');

  assert.equal((await placer.placementOf(0)).ticket, 't-a');
  assert.equal((await placer.placementOf(2)).ticket, 't-c');
  assert.equal((await placer.placementOf(1)).ticket, 't-b');
  assert.deepEqual(main.requests, [['a', 'b', 'c']]);

  placer.add(3, { id: 'd', size: 10 });
  assert.equal((await placer.placementOf(3)).chunk, 'd');
  assert.deepEqual(main.requests, [['a', 'b', 'c'], ['d']]);
});

test("main's failure reaches every chunk of the request, and a chunk never added is refused", async () => {
  const main = fakeMain('fail');
  const placer = new Placer(main.client, 'u1');
  placer.add(0, { id: 'a', size: 10 });
  placer.add(1, { id: 'b', size: 10 });
  await assert.rejects(placer.placementOf(0), /main is down/);
  await assert.rejects(placer.placementOf(1), /main is down/);
  await assert.rejects(placer.placementOf(7), /never added/);
  assert.equal(main.requests.length, 1);
});

test('an answer whose placements are not the chunks asked, in order, fails them instead of mixing tickets', async () => {
  const main = fakeMain('short');
  const placer = new Placer(main.client, 'u1');
  placer.add(0, { id: 'a', size: 10 });
  placer.add(1, { id: 'b', size: 10 });
  await assert.rejects(placer.placementOf(0), /placement 1 of 2 is not for the chunk asked/);
  await assert.rejects(placer.placementOf(1), /placement 2 of 2 is not for the chunk asked/);
});

test('a placement asked for over a minute before its chunk is sent is asked for again, alone', async () => {
  const main = fakeMain();
  let now = 0;
  const placer = new Placer(main.client, 'u1', undefined, () => now);
  placer.add(0, { id: 'a', size: 10 });
  placer.add(1, { id: 'b', size: 10 });
  placer.add(2, { id: 'c', size: 10 });
  await placer.placementOf(0);
  now = 30_000;
  await placer.placementOf(1);
  assert.deepEqual(main.requests, [['a', 'b', 'c']], 'half a minute old, a placement is used as it is');
  now = 61_000;
  assert.equal((await placer.placementOf(2)).ticket, 't-c');
  assert.deepEqual(main.requests, [['a', 'b', 'c'], ['c']]);
});

test("main's warning is told once, however many requests carry it, and a listener that throws fails nothing", async () => {
  const main = fakeMain('place', 'only 1 of 3 wanted file servers are up');
  const told: string[] = [];
  const placer = new Placer(main.client, 'u1', (m) => {
    told.push(m);
    throw new Error('the terminal is gone');
  });
  for (let i = 0; i < 3; i++) {
    placer.add(i, { id: `c${i}`, size: 10 });
    await placer.placementOf(i);
  }
  assert.equal(main.requests.length, 3);
  assert.deepEqual(told, ['only 1 of 3 wanted file servers are up']);
});

test('a chunk added and given up without being sent leaves no unhandled rejection', async () => {
  const main = fakeMain('fail');
  const placer = new Placer(main.client, 'u1');
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  try {
    placer.add(0, { id: 'a', size: 10 });
    placer.add(1, { id: 'b', size: 10 });
    await assert.rejects(placer.placementOf(0));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
