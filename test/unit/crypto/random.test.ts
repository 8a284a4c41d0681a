import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBytesPooled } from '../../../src/crypto/random.js';

test('pooled random bytes come in the lengths asked, each draw its own bytes, across refills of the pool and for sizes drawn directly', () => {
  const seen = new Set<string>();
  // Well past several 8 KiB refills, with sizes that do not divide them.
  for (let i = 0; i < 5000; i++) {
    const n = [12, 16, 32, 7][i % 4] as number;
    const b = randomBytesPooled(n);
    assert.equal(b.length, n);
    seen.add(b.toString('hex'));
  }
  assert.equal(seen.size, 5000);
  assert.equal(randomBytesPooled(4096).length, 4096);
  assert.equal(randomBytesPooled(0).length, 0);
});

test("a draw is a copy of the pool's bytes in memory of its own: zeroing them in the pool leaves it as drawn, and it shares its memory with nothing", () => {
  for (let i = 0; i < 300; i++) {
    const key = randomBytesPooled(32);
    assert.notDeepEqual(key, Buffer.alloc(32));
    assert.equal(key.buffer.byteLength, 32);
  }
});

test('a size that is not a count of bytes is refused, as randomBytes refuses it', () => {
  for (const n of [-1, 1.5, Number.NaN]) assert.throws(() => randomBytesPooled(n), RangeError);
  assert.equal(randomBytesPooled(12).length, 12);
});

test('pooled bytes are spread over every value (a 64 KiB sample, each of 256 values within a wide bound)', () => {
  const counts = new Array<number>(256).fill(0);
  for (let i = 0; i < 2048; i++) for (const v of randomBytesPooled(32)) counts[v] = (counts[v] as number) + 1;
  // 256 expected per value; 6 standard deviations (~96) either side.
  for (const c of counts) assert.ok(c > 160 && c < 352, `a value drawn ${c} times`);
});
