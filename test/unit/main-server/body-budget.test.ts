import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHttpApp } from '../../../src/common/http-server.js';
import { silentLogger } from '../../../src/common/logger.js';
import { BodyBudget } from '../../../src/main-server/body-budget.js';
import { bodyWithinBudget, type MainContext } from '../../../src/main-server/context.js';

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

test('a big body that stops arriving is cut off at its deadline, and its bytes are given back', async () => {
  const bodies = new BodyBudget(1000, silentLogger(), Date.now, { minMs: 200, bytesPerSecond: 1e9 });
  const ctx = { bodies, accounts: { authenticate: () => ({ id: 'ann' }) } } as unknown as MainContext;
  const app = createHttpApp(silentLogger());
  app.post('/big', { bodyLimit: 1000, onRequest: [bodyWithinBudget(ctx, 1000)] }, async () => ({ ok: true }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const socket = connect((app.server.address() as { port: number }).port, '127.0.0.1');
  try {
    const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
    socket.on('error', () => undefined);
    socket.write(
      'POST /big HTTP/1.1\r\nHost: x\r\nauthorization: Bearer t\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{"a":',
    );
    for (let i = 0; i < 100 && bodies.used === 0; i++) await sleep(20);
    assert.equal(bodies.used, 400, 'the body holds its declared bytes while it comes');
    assert.ok(await Promise.race([closed, sleep(10_000, false, { ref: false })]), 'main cut the connection');
    for (let i = 0; i < 100 && bodies.used > 0; i++) await sleep(20);
    assert.equal(bodies.used, 0, 'and gave its bytes back');
  } finally {
    socket.destroy();
    await app.close();
  }
});
