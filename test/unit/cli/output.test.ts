import assert from 'node:assert/strict';
import { test } from 'node:test';
import { localTimestamp } from '../../../src/cli/output.js';

test("a listing's times are in this machine's time zone, as the system's ls -l shows them", () => {
  const tz = process.env.TZ;
  const at = Date.UTC(2026, 0, 31, 22, 45, 7);
  try {
    // Node takes a new TZ at once.
    process.env.TZ = 'Asia/Kolkata';
    assert.equal(localTimestamp(at), '2026-02-01 04:15:07');
    process.env.TZ = 'America/New_York';
    assert.equal(localTimestamp(at), '2026-01-31 17:45:07');
    process.env.TZ = 'UTC';
    assert.equal(localTimestamp(at), '2026-01-31 22:45:07');
  } finally {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  }
});
