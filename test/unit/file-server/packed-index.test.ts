import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { type PackedAt, PackedIndex } from '../../../src/file-server/packed-index.js';
import { seededRandom } from '../../helpers/seeded.js';

const idOf = (k: number) => createHash('sha256').update(`chunk ${k}`).digest('hex');

function sameAsModel(index: PackedIndex, model: Map<string, PackedAt>, ids: string[]): void {
  assert.equal(index.size, model.size);
  for (const id of ids) assert.deepEqual(index.get(id), model.get(id), `entry for ${id}`);
}

for (const [name, key] of [
  ['a fixed key', new Uint32Array([1, 2, 3, 4, 5, 6, 7, 8, 9])],
  ['a random key', undefined],
] as const) {
  test(`answers like a Map through 40,000 random adds, moves and removals, growing and shrinking (${name})`, () => {
    const index = new PackedIndex(key);
    const model = new Map<string, PackedAt>();
    const ids = Array.from({ length: 4000 }, (_, k) => idOf(k));
    const random = seededRandom(0x5eed);
    for (let op = 1; op <= 40_000; op++) {
      const id = ids[Math.floor(random() * ids.length)] as string;
      if (random() < 0.6) {
        const at = {
          pack: 1 + Math.floor(random() * 5000),
          offset: Math.floor(random() * 2 ** 32),
          size: op,
        };
        index.set(id, at);
        model.set(id, at);
      } else {
        assert.deepEqual(index.delete(id), model.get(id));
        model.delete(id);
      }
      if (op % 5000 === 0) sameAsModel(index, model, ids);
    }
    // All in, then all out again: the table grows past its first size and shrinks back.
    for (const [k, id] of ids.entries()) {
      index.set(id, { pack: 1, offset: k, size: 1 });
      model.set(id, { pack: 1, offset: k, size: 1 });
    }
    sameAsModel(index, model, ids);
    for (const [k, id] of ids.entries()) {
      assert.deepEqual(index.delete(id), model.get(id));
      model.delete(id);
      if (k % 500 === 0) sameAsModel(index, model, ids);
    }
    sameAsModel(index, model, ids);
    assert.equal(index.delete(ids[0] as string), undefined);
  });
}

test('lists every id in ascending order, as they were when the listing began', () => {
  const index = new PackedIndex();
  const ids = Array.from({ length: 3000 }, (_, k) => idOf(k));
  for (const id of ids) index.set(id, { pack: 7, offset: 0, size: 1 });
  const listing = index.sortedIds();
  const first = listing.next();
  // Changes after the listing began do not show in it.
  for (const id of ids.slice(0, 1000)) index.delete(id);
  index.set(idOf(99_999), { pack: 1, offset: 0, size: 1 });
  const listed = [first.value as string, ...listing];
  assert.deepEqual(listed, [...ids].sort());
  assert.deepEqual([...index.sortedIds()], [...ids.slice(1000), idOf(99_999)].sort());
});

test('refuses ids that are not 64 hex digits and places that do not fit', () => {
  const index = new PackedIndex();
  assert.throws(() => index.get('ab'), RangeError);
  assert.throws(() => index.set(`${'z'.repeat(64)}`, { pack: 1, offset: 0, size: 1 }), RangeError);
  assert.throws(() => index.set(idOf(1), { pack: 0, offset: 0, size: 1 }), RangeError);
  assert.throws(() => index.set(idOf(1), { pack: 1, offset: 2 ** 32, size: 1 }), RangeError);
  assert.equal(index.size, 0);
});
