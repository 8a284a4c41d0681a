import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serversTable } from '../../../src/cli/servers.js';
import type { ServerView } from '../../../src/protocol/main-api.js';

const server = (id: string, extra: Partial<ServerView> = {}): ServerView => ({
  id,
  url: `https://127.0.0.1:${id.length}`,
  state: 'up',
  totalBytes: 100 * 2 ** 30,
  freeBytes: 10 * 2 ** 30,
  usedBytes: 2 ** 30,
  chunkCount: 256,
  lastHeartbeat: 9_000,
  missing: 0,
  extra: 0,
  ...extra,
});

test('sedfs servers shows a free space the server cannot read as unknown, and says what placement counts on instead', () => {
  const out = serversTable(
    [server('a'.repeat(32)), server('b'.repeat(32), { freeUnknown: true, freeBytes: 64 * 2 ** 30 })],
    10_000,
  );
  const [header, known, unknown] = out.split('\n');
  assert.match(header as string, /FREE/);
  assert.match(known as string, /10(\.0)? GiB/);
  assert.match(unknown as string, /\bunknown\b/);
  assert.doesNotMatch(unknown as string, /64/);
  assert.match(out, /2 of 2 up/);
  assert.match(out, /FREE unknown: .*statfs fails.* as if it had 64(\.0)? GiB \(bbbbbbbb\)/);
  // With every free space known, no note.
  assert.doesNotMatch(serversTable([server('a'.repeat(32))], 10_000), /unknown/);
});
