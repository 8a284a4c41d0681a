import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../../src/common/logger.js';
import { BodyBudget } from '../../../src/main-server/body-budget.js';

const busy = { code: 'SEDFS_ERR_BUSY' };

test('a body is taken only within the budget and its sender’s half of it, and given back once', () => {
  const budget = new BodyBudget(100, silentLogger());
  const ann = budget.take('ann', 30);
  budget.take('ann', 20);
  assert.throws(() => budget.take('ann', 1), busy, 'ann has her half');
  const bob = budget.take('bob', 50);
  assert.throws(() => budget.take('cy', 1), busy, 'the budget is full');
  ann();
  ann();
  assert.equal(budget.used, 70, 'a release called twice gives back once');
  budget.take('cy', 30);
  bob();
  assert.throws(() => budget.take('ann', 31), busy, 'ann still has 20 in flight');
  budget.take('ann', 30);
});

test('a body bigger than a user’s half is read when nothing else is, so every body can get through', () => {
  const budget = new BodyBudget(100, silentLogger());
  const release = budget.take('ann', 80);
  assert.throws(() => budget.take('bob', 80), busy);
  release();
  budget.take('bob', 80);
  assert.equal(budget.used, 80);
});
