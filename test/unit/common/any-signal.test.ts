import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { anySignal } from '../../../src/common/any-signal.js';
import { collectGarbage } from '../../helpers/gc.js';

test('a signal made of a timeout and another aborts at the timeout, though a garbage collection came in between', async () => {
  const other = new AbortController();
  const signal = anySignal([other.signal, AbortSignal.timeout(200)]);
  let fired = false;
  signal.addEventListener('abort', () => {
    fired = true;
  });
  collectGarbage();
  await sleep(50);
  collectGarbage();
  await sleep(400);
  assert.equal(fired, true);
  assert.equal((signal.reason as Error).name, 'TimeoutError');
});

test('a signal made of others aborts with the first of them to abort, with its reason', () => {
  const a = new AbortController();
  const b = new AbortController();
  const signal = anySignal([a.signal, b.signal]);
  assert.equal(signal.aborted, false);
  b.abort(new Error('b went first'));
  assert.equal((signal.reason as Error).message, 'b went first');
});
