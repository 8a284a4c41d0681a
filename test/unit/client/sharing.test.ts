import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stallLimitMs } from '../../../src/client/sharing.js';

const MiB = 1024 * 1024;

test("another client's rotation attempt is taken over only after longer than main gives one part plus the busy retries", () => {
  // 8 MiB parts: main's deadline is 60 s + 32 s, the busy retries ~80 s; 5 minutes is above both.
  assert.equal(stallLimitMs(), 5 * 60_000);
  assert.ok(stallLimitMs() > 60_000 + ((8 * MiB) / (256 * 1024)) * 1000 + 80_000);
  // Bigger parts wait the longer: 60 s + 64 MiB at 256 KiB/s + 80 s.
  assert.equal(stallLimitMs(64 * MiB), 60_000 + 256_000 + 80_000);
  // Smaller parts of its own say nothing of the other client's: the default is the least.
  assert.equal(stallLimitMs(600), 5 * 60_000);
});
