import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseReplicas, chooseTrustedFirst } from '../../../src/main-server/placement.js';
import { seededRandom as seeded } from '../../helpers/seeded.js';

const servers = (frees: number[]) =>
  frees.map((f, i) => ({ id: `s${i}`, url: `http://s${i}`, freeBytes: f }));

test('picks R distinct servers, or all of them when fewer exist', () => {
  const random = seeded(1);
  for (let i = 0; i < 200; i++) {
    const picked = chooseReplicas(servers([5, 5, 5, 5, 5]), 3, random);
    assert.equal(new Set(picked.map((p) => p.id)).size, 3);
  }
  assert.equal(chooseReplicas(servers([1, 1]), 3, random).length, 2);
  assert.equal(chooseReplicas([], 3, random).length, 0);
});

test('prefers servers with more free space', () => {
  const random = seeded(2);
  const counts = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    const [first] = chooseReplicas(servers([100, 100, 800]), 1, random);
    counts.set(first?.id as string, (counts.get(first?.id as string) ?? 0) + 1);
  }
  assert.ok((counts.get('s2') ?? 0) > 1400, JSON.stringify([...counts]));
});

test('the head of the chain varies, so no server takes every first write', () => {
  const random = seeded(3);
  const heads = new Set<string>();
  for (let i = 0; i < 100; i++) heads.add(chooseReplicas(servers([10, 10, 10]), 3, random)[0]?.id as string);
  assert.equal(heads.size, 3);
});

test('a full server is still used when it is the only one left', () => {
  assert.deepEqual(
    chooseReplicas(servers([0]), 1, seeded(4)).map((s) => s.id),
    ['s0'],
  );
});

test('servers that are not trusted (a failed storage audit) get a copy only when the others cannot make up the count', () => {
  const random = seeded(5);
  // s2 claims nearly all the free space there is.
  const all = servers([10, 10, 1_000_000, 10]);
  const trusted = (id: string) => id !== 's2';
  for (let i = 0; i < 200; i++) {
    const picked = chooseTrustedFirst(all, 3, random, trusted).map((s) => s.id);
    assert.equal(picked.length, 3);
    assert.ok(!picked.includes('s2'), `picked ${picked}`);
  }
  const four = chooseTrustedFirst(all, 4, random, trusted).map((s) => s.id);
  assert.equal(four.length, 4, 'needed to make up the count, it is used');
  assert.equal(four.at(-1), 's2', 'last');
});
