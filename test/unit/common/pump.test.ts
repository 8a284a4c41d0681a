import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { pump } from '../../../src/common/pump.js';

const pieces = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from([i]));

test('pump hands over every piece in order and resolves at the end', async () => {
  const seen: number[] = [];
  await pump(Readable.from(pieces(50)), (p) => {
    seen.push(p[0] as number);
    return undefined;
  });
  assert.deepEqual(
    seen,
    Array.from({ length: 50 }, (_, i) => i),
  );
});

test('pump waits for a returned promise before the next piece and before resolving', async () => {
  const log: string[] = [];
  await pump(Readable.from(pieces(4)), (p) => {
    log.push(`start ${p[0]}`);
    if (p[0] !== 1 && p[0] !== 3) return undefined;
    return new Promise<void>((resolve) =>
      setTimeout(() => {
        log.push(`done ${p[0]}`);
        resolve();
      }, 20),
    );
  });
  assert.deepEqual(log, ['start 0', 'start 1', 'done 1', 'start 2', 'start 3', 'done 3']);
});

test("pump rejects with the handler's error, thrown or rejected, and stops handing over", async () => {
  let calls = 0;
  await assert.rejects(
    pump(Readable.from(pieces(10)), () => {
      calls += 1;
      if (calls === 3) throw new Error('too large');
      return undefined;
    }),
    /too large/,
  );
  assert.equal(calls, 3);
  await assert.rejects(
    pump(Readable.from(pieces(10)), () => Promise.reject(new Error('disk full'))),
    /disk full/,
  );
});

test("pump rejects with the source's error", async () => {
  const src = new Readable({ read() {} });
  const done = pump(src, () => undefined);
  src.push(Buffer.from('a'));
  src.destroy(new Error('connection reset'));
  await assert.rejects(done, /connection reset/);
});
