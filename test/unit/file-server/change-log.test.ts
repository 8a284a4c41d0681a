import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChangeLog } from '../../../src/file-server/change-log.js';

test('a chunk that comes and goes is reported by its latest state only', () => {
  const log = new ChangeLog();
  log.noteAdded('a');
  log.noteRemoved('a');
  log.noteAdded('b');
  assert.deepEqual(log.take(10), { added: ['b'], removed: ['a'] });
  assert.deepEqual(log.take(10), { added: [], removed: [] });
});

test('take hands out at most the asked number of each kind and keeps the rest', () => {
  const log = new ChangeLog();
  for (const id of ['a', 'b', 'c']) log.noteAdded(id);
  assert.deepEqual(log.take(2).added, ['a', 'b']);
  assert.deepEqual(log.take(2).added, ['c']);
});

test('undelivered changes come back unless a newer change replaced them', () => {
  const log = new ChangeLog();
  log.noteAdded('a');
  log.noteAdded('b');
  const sent = log.take(10);
  log.noteRemoved('a');
  log.giveBack(sent);
  assert.deepEqual(log.take(10), { added: ['b'], removed: ['a'] });
});

test('a log that grows past its bound is dropped and asks for a full inventory', () => {
  const log = new ChangeLog();
  for (let i = 0; i <= 200_000; i++) log.noteAdded(String(i));
  assert.equal(log.overflowed, true);
  assert.equal(log.size, 0);
  log.clear();
  assert.equal(log.overflowed, false);
});
