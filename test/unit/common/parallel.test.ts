import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { mapInParallel, Slots } from '../../../src/common/parallel.js';

test('results come in the items’ order, with never more than the limit running', async () => {
  let running = 0;
  let most = 0;
  const out = await mapInParallel([5, 1, 4, 2, 3, 0], 3, async (ms) => {
    running++;
    most = Math.max(most, running);
    await sleep(ms);
    running--;
    return ms * 10;
  });
  assert.deepEqual(out, [50, 10, 40, 20, 30, 0]);
  assert.equal(most, 3);
});

test('the first failure is thrown and no new task starts after it', async () => {
  const started: number[] = [];
  await assert.rejects(
    mapInParallel([0, 1, 2, 3, 4, 5, 6, 7], 2, async (i) => {
      started.push(i);
      await sleep(1);
      if (i === 1) throw new Error('item 1 failed');
      return i;
    }),
    /item 1 failed/,
  );
  await sleep(20);
  assert.ok(started.length <= 3, `started ${started.join(', ')} after the failure`);
});

test('a limit below one still runs every item, one at a time', async () => {
  assert.deepEqual(await mapInParallel([1, 2, 3], 0, async (i) => i + 1), [2, 3, 4]);
});

test('slots let at most their count in at once, and waiters in the order they came', async () => {
  const slots = new Slots(2);
  const order: number[] = [];
  let inside = 0;
  let most = 0;
  await Promise.all(
    [0, 1, 2, 3, 4].map(async (i) => {
      await slots.acquire();
      order.push(i);
      inside++;
      most = Math.max(most, inside);
      await sleep(5);
      inside--;
      slots.release();
    }),
  );
  assert.equal(most, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
});
