import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterClient } from '../../../src/client/cluster-client.js';
import { Placer } from '../../../src/client/placer.js';
import { Unanswering } from '../../../src/client/unanswering.js';
import { SedfsError } from '../../../src/protocol/errors.js';

/**
 * A main that records every placement request, answers as `answer` says, and may warn.
 * It places each chunk on the first of `servers` it was not asked to leave out; with all
 * left out, it refuses as main does (SEDFS_ERR_NO_SERVERS).
 */
function fakeMain(answer: 'place' | 'fail' | 'short' = 'place', warning?: string, servers = ['s1']) {
  const requests: string[][] = [];
  const excluded: (string[] | undefined)[] = [];
  const client = {
    unanswering: new Unanswering(),
    placeAround: ClusterClient.prototype.placeAround,
    place: async (_upload: string, chunks: { id: string; exclude?: string[] }[]) => {
      requests.push(chunks.map((c) => c.id));
      excluded.push(chunks[0]?.exclude);
      if (answer === 'fail') throw new Error('main is down');
      const placed = answer === 'short' ? chunks.slice(1) : chunks;
      return {
        placements: placed.map((c) => {
          const on = servers.find((s) => !c.exclude?.includes(s));
          if (!on) throw new SedfsError('SEDFS_ERR_NO_SERVERS');
          return { chunk: c.id, servers: [{ id: on, url: 'u' }], ticket: `t-${c.id}-${on}` };
        }),
        ...(warning ? { warning } : {}),
      };
    },
  };
  return { client: client as unknown as ClusterClient, requests, excluded, unanswering: client.unanswering };
}

test('the chunk about to be sent is placed with every sealed chunk not yet placed, in one request', async () => {
  const main = fakeMain();
  const placer = new Placer(main.client, 'u1');
  placer.add(0, { id: 'a', size: 10 });
  placer.add(1, { id: 'b', size: 10 });
  placer.add(2, { id: 'c', size: 10 });
  assert.deepEqual(main.requests, [], 'nothing is asked before a chunk is about to be sent');

  assert.equal((await placer.placementOf(0)).ticket, 't-a-s1');
  assert.equal((await placer.placementOf(2)).ticket, 't-c-s1');
  assert.equal((await placer.placementOf(1)).ticket, 't-b-s1');
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
  assert.equal((await placer.placementOf(2)).ticket, 't-c-s1');
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

test('servers found not answering are left out of the placements asked after, and a placement naming one found since it was asked is asked again without it', async () => {
  const main = fakeMain('place', undefined, ['s1', 's2', 's3']);
  const placer = new Placer(main.client, 'u1');
  placer.add(0, { id: 'a', size: 10 });
  placer.add(1, { id: 'b', size: 10 });
  assert.equal((await placer.placementOf(0)).servers[0]?.id, 's1');
  // Found not answering after b was placed (with a) on it: b is placed again, around it.
  main.unanswering.note('s1', 'took no data for 10 s');
  const b = await placer.placementOf(1);
  assert.equal(b.servers[0]?.id, 's2');
  assert.equal(b.ticket, 't-b-s2');
  placer.add(2, { id: 'c', size: 10 });
  assert.equal((await placer.placementOf(2)).servers[0]?.id, 's2');
  assert.deepEqual(main.requests, [['a', 'b'], ['b'], ['c']]);
  assert.deepEqual(main.excluded, [undefined, ['s1'], ['s1']]);
});

test('with every server found not answering, chunks are placed as main says rather than not at all, and not asked for again', async () => {
  const main = fakeMain('place', undefined, ['s1']);
  main.unanswering.note('s1', 'cannot reach it');
  const placer = new Placer(main.client, 'u1');
  placer.add(0, { id: 'a', size: 10 });
  assert.equal((await placer.placementOf(0)).servers[0]?.id, 's1');
  assert.deepEqual(main.excluded, [['s1'], undefined]);
});
