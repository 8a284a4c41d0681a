import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { StallWatch } from '../../../src/common/stall-watch.js';
import type { SedfsError } from '../../../src/protocol/errors.js';

const MS = 100;

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
