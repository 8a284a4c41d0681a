import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CONNECTIONS_PER_ENDPOINT, createAgent, requestJson } from '../../../src/common/http-client.js';
import { StallWatch, watchedRequest } from '../../../src/common/stall-watch.js';
import type { SedfsError } from '../../../src/protocol/errors.js';
import { collectGarbageEvery } from '../../helpers/gc.js';

// The stall limit of the watches here. A watch gives a health check half of it to answer,
// over a real socket in most tests: 50 ms of 100 was not enough on a loaded machine.
const MS = 300;

/** A health check that never answers (until cancelled), and how many were asked. */
function hung() {
  let asked = 0;
  let cancelled = 0;
  const alive = (signal: AbortSignal) => {
    asked += 1;
    return new Promise<void>((_, reject) =>
      signal.addEventListener('abort', () => {
        cancelled += 1;
        reject(new Error('cancelled'));
      }),
    );
  };
  return { alive, asked: () => asked, cancelled: () => cancelled };
}

const refused = () => Promise.reject(new Error('connection refused'));

test('a body whose bytes stop moving fails as unreachable, naming the server, once its health check fails too; bytes that keep moving ask nothing', async () => {
  let asked = 0;
  const watch = new StallWatch(
    'https://127.0.0.1:1',
    () => {
      asked += 1;
      return refused();
    },
    MS,
  );
  for (let i = 0; i < 6; i++) {
    watch.moved();
    await sleep(MS / 4);
  }
  assert.equal(asked, 0);
  assert.equal(watch.signal.aborted, false);
  await sleep(MS * 3);
  assert.equal(asked, 1);
  assert.equal(watch.failure?.code, 'SEDFS_ERR_UNREACHABLE');
  assert.equal(
    watch.failure?.message,
    `https://127.0.0.1:1 took no data for ${MS / 1000} s, nor answered a health check`,
  );
});

test('a server slow to take the body or to answer, whose health check answers, is waited for', async () => {
  let asked = 0;
  const watch = new StallWatch(
    'o',
    async () => {
      asked += 1;
    },
    MS,
  );
  watch.moved();
  await sleep(MS * 3.5);
  watch.awaitingAnswer();
  await sleep(MS * 3.5);
  assert.equal(watch.signal.aborted, false);
  assert.ok(asked >= 4, `health asked ${asked} times`);
  watch.finish();
  const before = asked;
  await sleep(MS * 2);
  assert.equal(asked, before, 'nothing is asked once the answer came');
});

test('awaiting the answer, a server that answers nothing, nor its health check, fails the transfer as not answering', async () => {
  const watch = new StallWatch('https://h:1', refused, MS);
  watch.awaitingAnswer();
  await sleep(MS * 3);
  assert.match(
    String((watch.signal.reason as SedfsError).message),
    /^https:\/\/h:1 has not answered for .* nor answered a health check$/,
  );
});

test('a health check under way is cancelled when the transfer moves on, and its late failure changes nothing', async () => {
  const health = hung();
  const watch = new StallWatch('o', health.alive, MS);
  watch.moved();
  await sleep(MS * 1.5);
  assert.equal(health.asked(), 1);
  // A piece taken meanwhile: the check is dropped, the wait starts again.
  watch.moved();
  assert.equal(health.cancelled(), 1);
  watch.finish();
  await sleep(MS * 2);
  assert.equal(watch.signal.aborted, false);
  assert.equal(health.asked(), 1);
});

test('told only that bytes wait, a watch already running is not started over', async () => {
  const watch = new StallWatch('o', refused, MS);
  watch.waiting();
  await sleep(MS / 2);
  watch.waiting();
  await sleep(MS);
  assert.equal(watch.signal.aborted, true);
});

test('a body read to its end moves on to awaiting the answer; one given up half-way leaves nothing running', async () => {
  let asked = 0;
  const whole = new StallWatch(
    'o',
    async () => {
      asked += 1;
    },
    MS,
  );
  assert.deepEqual([...whole.watching([Buffer.from('a'), Buffer.from('b')])].map(String), ['a', 'b']);
  await sleep(MS * 1.5);
  assert.equal(asked, 1);
  whole.finish();

  const half = new StallWatch('o', refused, MS);
  for (const _ of half.watching([Buffer.from('a'), Buffer.from('b')])) break;
  await sleep(MS * 2);
  assert.equal(half.signal.aborted, false);
});

test('once finished, a watch never fails the transfer, whatever the body does after', async () => {
  const watch = new StallWatch('o', refused, MS);
  const body = watch.watching([Buffer.from('a'), Buffer.from('b')]);
  body.next();
  watch.finish();
  // undici asking for the rest of a body answered early.
  body.next();
  body.next();
  watch.waiting();
  watch.awaitingAnswer();
  await sleep(MS * 3);
  assert.equal(watch.signal.aborted, false);
});

/**
 * A real HTTP server on 127.0.0.1 that answers `/v1/health` while `alive()` says so (a
 * hung one answers nothing, its connections left open) and everything else with `serve`.
 */
async function orderServer(serve: (res: ServerResponse) => void, alive: () => boolean) {
  const server = createServer((req, res) => {
    if (req.url !== '/v1/health') return serve(res);
    if (alive()) res.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = createAgent();
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    agent,
    close: async () => {
      await agent.destroy();
      server.closeAllConnections();
      server.close();
    },
  };
}

test("an order to a server that hangs fails as unreachable once its health check goes unanswered too, not at undici's minute", {
  timeout: 30_000,
}, async () => {
  const s = await orderServer(
    () => {},
    () => false,
  );
  // Collections while the health check waits: one freed its time limit (on Node 20, a
  // timeout inside AbortSignal.any), and the order waited for ever.
  const stopCollecting = collectGarbageEvery(MS / 5);
  try {
    await assert.rejects(
      watchedRequest(s.agent, `${s.url}/v1/chunks/x/verify`, { method: 'POST' }, MS),
      (err: SedfsError) =>
        err.code === 'SEDFS_ERR_UNREACHABLE' &&
        err.message === `${s.url} has not answered for ${MS / 1000} s, nor answered a health check`,
    );
    // The same through requestJson (a scrub: no limit on the answer but the watch).
    await assert.rejects(
      requestJson(s.agent, `${s.url}/v1/scrub`, { body: {}, headersTimeoutMs: 0, stallMs: MS }),
      { code: 'SEDFS_ERR_UNREACHABLE' },
    );
  } finally {
    stopCollecting();
    await s.close();
  }
});

test('an order answered late by a server whose health check answers gets its answer', async () => {
  const s = await orderServer(
    (res) => void setTimeout(() => res.end('{"ok":true}'), MS * 4),
    () => true,
  );
  try {
    const res = await watchedRequest(s.agent, `${s.url}/v1/chunks/x/verify`, { method: 'POST' }, MS);
    assert.deepEqual(await res.body.json(), { ok: true });
  } finally {
    await s.close();
  }
});

test('orders holding every pooled connection to a server that answers its health checks are waited for: the checks go on connections of their own', {
  timeout: 20_000,
}, async () => {
  const held: ServerResponse[] = [];
  let answering = false;
  const s = await orderServer(
    (res) => (answering ? res.end('{"ok":true}') : held.push(res)),
    () => true,
  );
  try {
    // As many orders as the agent keeps connections to a server, unanswered, hold them
    // all, and one more waits for one of them.
    // Each order's watch checks every second (65 checks a round, each allowed half of it).
    const order = () => watchedRequest(s.agent, `${s.url}/v1/chunks/x/verify`, { method: 'POST' }, 1000);
    const orders = Array.from({ length: CONNECTIONS_PER_ENDPOINT + 1 }, order);
    while (held.length < CONNECTIONS_PER_ENDPOINT) await sleep(10);
    await sleep(3500);
    answering = true;
    for (const res of held) res.end('{"ok":true}');
    for (const res of await Promise.all(orders)) assert.deepEqual(await res.body.json(), { ok: true });
  } finally {
    await s.close();
  }
});

test('an answer whose body stops coming fails once the server hangs, while a reader slow over its pieces is not counted', {
  timeout: 30_000,
}, async () => {
  let alive = true;
  const s = await orderServer(
    (res) => {
      res.write('first piece\n');
      if (res.req.url === '/whole') res.end('second piece\n');
    },
    () => alive,
  );
  try {
    // Every piece came: the reader may take as long as it likes, even with the server hung.
    const whole = await watchedRequest(s.agent, `${s.url}/whole`, {}, MS);
    alive = false;
    let text = '';
    for await (const piece of whole.pieces()) {
      text += String(piece);
      await sleep(MS * 3);
    }
    assert.equal(text, 'first piece\nsecond piece\n');

    // The body's end never comes: waited for while the server answers its health checks,
    // failed when it does not.
    alive = true;
    const half = await watchedRequest(s.agent, `${s.url}/half`, {}, MS);
    const pieces = half.pieces();
    assert.equal(String((await pieces.next()).value), 'first piece\n');
    const rest = pieces.next();
    // Failing early (a bug) fails the test below, not the process as unhandled meanwhile.
    rest.catch(() => undefined);
    await sleep(MS * 4);
    alive = false;
    await assert.rejects(rest, (err: SedfsError) =>
      /has not answered for .* nor answered a health check$/.test(err.message),
    );
  } finally {
    await s.close();
  }
});

test('a reader that stops early lets go of the answer: the server sees its response closed', {
  timeout: 5_000,
}, async () => {
  let closed: () => void = () => {};
  const gone = new Promise<void>((res) => {
    closed = res;
  });
  const s = await orderServer(
    (res) => {
      res.write('first piece\n');
      res.on('close', closed);
    },
    () => true,
  );
  try {
    const res = await watchedRequest(s.agent, `${s.url}/inventory`, { bodyTimeout: 0 }, MS);
    for await (const piece of res.pieces()) {
      assert.equal(String(piece), 'first piece\n');
      break;
    }
    await gone;
  } finally {
    await s.close();
  }
});

test('transfers to one server that stall at once share one health check, and each gets its answer; a hung server fails them all', {
  timeout: 30_000,
}, async () => {
  const held: ServerResponse[] = [];
  let checks = 0;
  let checkAnswers = true;
  const server = createServer((req, res) => {
    if (req.url !== '/v1/health') return void held.push(res);
    checks += 1;
    // A busy server: its checks take a while to answer, and overlap.
    if (checkAnswers) setTimeout(() => res.end('{}'), MS / 2);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const agent = createAgent();
  // Each order's failure is awaited below, or not at all if an assertion fails first.
  const order = () => {
    const sent = watchedRequest(agent, `${url}/v1/chunks/x/verify`, { method: 'POST' }, MS * 4);
    sent.catch(() => undefined);
    return sent;
  };
  try {
    const orders = Array.from({ length: 20 }, order);
    while (held.length < 20) await sleep(10);
    // Some rounds of checks (each may take MS * 2), all answered: the orders are waited
    // for, a check or two a round.
    await sleep(MS * 14);
    assert.ok(checks >= 2 && checks <= 12, `${checks} health checks for 20 orders over ~3 rounds`);
    for (const res of held.splice(0)) res.end('{"ok":true}');
    for (const res of await Promise.all(orders)) assert.deepEqual(await res.body.json(), { ok: true });

    // Hung: the orders' shared checks go unanswered, and every order fails.
    checkAnswers = false;
    checks = 0;
    const failing = Array.from({ length: 20 }, order);
    while (held.length < 20) await sleep(10);
    for (const outcome of await Promise.allSettled(failing))
      assert.equal(
        outcome.status === 'rejected' && (outcome.reason as SedfsError).code,
        'SEDFS_ERR_UNREACHABLE',
      );
    assert.ok(checks <= 3, `${checks} health checks for 20 orders to a hung server`);
  } finally {
    await agent.destroy();
    server.closeAllConnections();
    server.close();
  }
});
