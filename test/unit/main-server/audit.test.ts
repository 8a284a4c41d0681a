import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AuditLog } from '../../../src/main-server/audit.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-audit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; suppressed?: number; user?: string });

test('a flood of refusals is written one by one up to a burst, then counted: the audit log cannot be grown at will', () => {
  const file = join(dir, 'flood.log');
  const clock = { now: 1_000_000 };
  const audit = new AuditLog(file, () => clock.now);
  for (let i = 0; i < 1000; i++) audit.write({ event: 'auth_failed' });
  audit.write({ event: 'share', user: 'u1' });
  for (let i = 0; i < 5; i++) audit.write({ event: 'login_failed', user: 'u2' });
  audit.flushSuppressed();
  const got = lines(file);
  assert.equal(got.filter((l) => l.event === 'auth_failed' && l.suppressed === undefined).length, 20);
  assert.deepEqual(
    got.filter((l) => l.suppressed !== undefined).map((l) => [l.event, l.suppressed]),
    [
      ['auth_failed', 980],
      ['login_failed', 5],
    ],
  );
  assert.ok(
    got.some((l) => l.event === 'share' && l.user === 'u1'),
    'other events are always written',
  );
  // A second later, ten more are written one by one.
  clock.now += 1000;
  for (let i = 0; i < 15; i++) audit.write({ event: 'denied', user: 'u3' });
  audit.flushSuppressed();
  const later = lines(file).slice(got.length);
  assert.equal(later.filter((l) => l.event === 'denied' && l.suppressed === undefined).length, 10);
  assert.deepEqual(later.at(-1), { ...later.at(-1), event: 'denied', suppressed: 5 });
});
