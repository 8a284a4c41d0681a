import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { StallWatch } from '../../../src/common/stall-watch.js';
import type { SedfsError } from '../../../src/protocol/errors.js';

const MS = 40;

test('bytes that stop moving fail the transfer as unreachable, naming the server; bytes that keep moving do not', async () => {
  const watch = new StallWatch('https://127.0.0.1:1', async () => {}, MS);
  for (let i = 0; i < 6; i++) {
    watch.moved();
    await sleep(MS / 2);
  }
  assert.equal(watch.signal.aborted, false);
  await sleep(MS * 2);
  assert.equal(watch.signal.aborted, true);
  assert.equal(watch.failure?.code, 'SEDFS_ERR_UNREACHABLE');
  assert.match(String(watch.failure?.message), /^https:\/\/127\.0\.0\.1:1 took no data for/);
});

test('a watch stopped, or only told that bytes wait while its wait already runs, does not fail early', async () => {
  const stopped = new StallWatch('o', async () => {}, MS);
  stopped.moved();
  stopped.stop();
  const waiting = new StallWatch('o', async () => {}, MS);
  waiting.waiting();
  await sleep(MS / 2);
  // Told again that bytes wait: the wait that runs is not started over.
  waiting.waiting();
  await sleep(MS * 0.75);
  assert.equal(stopped.signal.aborted, false);
  assert.equal(waiting.signal.aborted, true);
});

test('awaiting the answer, a server that answers its health check is waited for; one that does not fails the transfer', async () => {
  let asked = 0;
  const alive = new StallWatch(
    'o',
    async () => {
      asked += 1;
    },
    MS,
  );
  alive.awaitingAnswer();
  await sleep(MS * 4);
  assert.equal(alive.signal.aborted, false);
  assert.ok(asked >= 2, `health asked ${asked} times`);
  alive.stop();
  const before = asked;
  await sleep(MS * 2);
  assert.equal(asked, before, 'nothing is asked once the answer came');

  const hung = new StallWatch('https://h:1', () => Promise.reject(new Error('timed out')), MS);
  hung.awaitingAnswer();
  await sleep(MS * 2);
  assert.equal(hung.signal.aborted, true);
  assert.match(
    String((hung.signal.reason as SedfsError).message),
    /has not answered for .* nor to a health check/,
  );
});

test('a health check that answers after the answer came changes nothing', async () => {
  let release!: () => void;
  const watch = new StallWatch(
    'o',
    () =>
      new Promise<void>((_, reject) => {
        release = () => reject(new Error('late'));
      }),
    MS,
  );
  watch.awaitingAnswer();
  await sleep(MS * 1.5);
  watch.stop();
  release();
  await sleep(MS);
  assert.equal(watch.signal.aborted, false);
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
  whole.stop();

  const half = new StallWatch('o', async () => {}, MS);
  for (const _ of half.watching([Buffer.from('a'), Buffer.from('b')])) break;
  await sleep(MS * 2);
  assert.equal(half.signal.aborted, false);
});
