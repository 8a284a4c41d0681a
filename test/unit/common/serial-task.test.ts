import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { SerialTask } from '../../../src/common/serial-task.js';

test('a background task stopped runs nothing more: a kick from a timer set before the stop is ignored', async () => {
  let runs = 0;
  const task = new SerialTask(
    async () => {
      runs++;
    },
    pino({ level: 'silent' }),
    'test task',
  );
  await task.runNow();
  assert.equal(runs, 1);
  await task.stop();
  task.kick();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(runs, 1, 'no run after the stop');
});
