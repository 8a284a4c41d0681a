import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { test } from 'node:test';
import { watchOutput } from '../../../src/common/output-watch.js';

const sink = () =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });

test('a watched output that fails or closes before it finished fails the watch with why; one that finishes does not', async () => {
  const failing = sink();
  const watch = watchOutput(failing, 'closed early');
  failing.destroy(Object.assign(new Error('EPIPE: broken pipe'), { code: 'EPIPE' }));
  await assert.rejects(watch.failed, { code: 'EPIPE' });
  assert.equal((watch.error as NodeJS.ErrnoException).code, 'EPIPE');

  const closing = new PassThrough();
  const early = watchOutput(closing, 'closed early');
  closing.destroy();
  await assert.rejects(early.failed, { message: 'closed early' });

  const fine = sink();
  const done = watchOutput(fine, 'closed early');
  fine.end('all of it');
  await finished(fine);
  const outcome = await Promise.race([
    done.failed.then(
      () => 'failed',
      () => 'failed',
    ),
    new Promise((r) => setTimeout(r, 50, 'no')),
  ]);
  assert.equal(outcome, 'no');
  assert.equal(done.error, undefined);
  done.stop();
});

test('an output already failed, closed, or ended fails the watch at once: a writer would wait on it for ever', async () => {
  const ended = sink();
  ended.end();
  await finished(ended);
  const closedAfterFinishing = sink();
  closedAfterFinishing.end();
  await finished(closedAfterFinishing);
  closedAfterFinishing.destroy();
  const endedNotFinished = new PassThrough();
  endedNotFinished.end();
  for (const out of [ended, closedAfterFinishing, endedNotFinished]) {
    const watch = watchOutput(out, 'takes nothing more');
    assert.equal(watch.error?.message, 'takes nothing more');
    await assert.rejects(watch.failed, { message: 'takes nothing more' });
  }
});

test('a stopped watch leaves no listener on the output', () => {
  const out = sink();
  const before = [out.listenerCount('error'), out.listenerCount('close')];
  const watch = watchOutput(out, 'closed early');
  watch.stop();
  assert.deepEqual([out.listenerCount('error'), out.listenerCount('close')], before);
});
