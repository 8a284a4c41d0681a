import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Unanswering } from '../../../src/client/unanswering.js';
import { MAX_EXCLUDED } from '../../../src/protocol/limits.js';

test('a server found not answering is told once until forgotten, and forgotten after a while', () => {
  let now = 0;
  const told: string[] = [];
  const u = new Unanswering(60_000, () => now);
  u.onNoted = (server, why) => told.push(`${server}: ${why}`);
  u.note('s1', 'took no data');
  now = 30_000;
  u.note('s1', 'cannot reach it');
  assert.deepEqual(told, ['s1: took no data']);
  assert.ok(u.has('s1'));
  assert.ok(!u.has('s2'));
  // Each failure starts the while again.
  now = 89_999;
  assert.ok(u.has('s1'));
  now = 90_000;
  assert.ok(!u.has('s1'));
  assert.deepEqual(u.list(), []);
  u.note('s1', 'cannot reach it again');
  assert.deepEqual(told, ['s1: took no data', 's1: cannot reach it again']);
});

test('the servers to leave out come latest first, as many as a placement request may name, and a listener that throws fails nothing', () => {
  let now = 0;
  const u = new Unanswering(60_000, () => now);
  u.onNoted = () => {
    throw new Error('the terminal is gone');
  };
  for (let i = 0; i < MAX_EXCLUDED + 4; i++) {
    now += 1;
    u.note(`s${i}`, 'down');
  }
  const list = u.list();
  assert.equal(list.length, MAX_EXCLUDED);
  assert.equal(list[0], `s${MAX_EXCLUDED + 3}`);
  assert.ok(!list.includes('s0'));
});

test('copies on servers found not answering are tried last, each side in its own order', () => {
  const u = new Unanswering();
  const copies = ['a', 'b', 'c', 'd'].map((id) => ({ id }));
  assert.deepEqual(
    u.last(copies, (c) => c.id),
    copies,
  );
  u.note('a', 'down');
  u.note('c', 'down');
  assert.deepEqual(
    u.last(copies, (c) => c.id).map((c) => c.id),
    ['b', 'd', 'a', 'c'],
  );
});

test("servers other runs found not answering are read last, as of when they were found, left in placements, told to no one, and handed on with this run's", () => {
  let now = 100_000;
  const told: string[] = [];
  const u = new Unanswering(60_000, () => now);
  u.onNoted = (server) => told.push(server);
  u.remember([
    { server: 'old', at: 30_000 }, // forgotten already
    { server: 'recent', at: 90_000 },
    { server: 'future', at: 200_000 }, // a clock gone wrong: not believed
  ]);
  const copies = ['recent', 'old', 'future', 'other'];
  assert.deepEqual(
    u.last(copies, (c) => c),
    ['old', 'future', 'other', 'recent'],
  );
  assert.deepEqual(u.list(), [], 'not left out of placements');
  assert.ok(!u.has('recent'));
  assert.equal(u.foundHere, false, 'only remembered');
  assert.deepEqual(u.recent(), [{ server: 'recent', at: 90_000 }]);
  now = 150_000;
  assert.deepEqual(
    u.last(copies, (c) => c),
    copies,
    'a minute after the other run found it',
  );
  u.note('mine', 'cannot reach it');
  u.remember([{ server: 'mine', at: 120_000 }]);
  assert.deepEqual(told, ['mine']);
  assert.equal(u.foundHere, true);
  assert.deepEqual(u.recent(), [{ server: 'mine', at: 150_000 }], 'the latest finding of each');
});
