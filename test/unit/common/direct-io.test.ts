import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DIRECT_ALIGN, DirectIo } from '../../../src/common/direct-io.js';

const root = mkdtempSync(join(tmpdir(), 'sedfs-direct-io-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('a buffer it made, or a piece from its start with room enough, starts aligned; a piece from elsewhere in it, or memory it did not make, does not', (t) => {
  const io = DirectIo.open(root);
  if (!io) {
    t.skip('O_DIRECT is refused on this file system');
    return;
  }
  try {
    const made = io.alignedBuffer(4 * DIRECT_ALIGN);
    assert.equal(io.startsAligned(made), true);
    assert.equal(io.startsAligned(made.subarray(0, 100)), true);
    assert.equal(io.startsAligned(made.subarray(0, 100), 4 * DIRECT_ALIGN), true);
    assert.equal(io.startsAligned(made.subarray(0, 100), 5 * DIRECT_ALIGN), false);
    assert.equal(io.startsAligned(made.subarray(DIRECT_ALIGN)), false);
    assert.equal(io.startsAligned(Buffer.alloc(4 * DIRECT_ALIGN)), false);
    const other = DirectIo.open(root);
    try {
      assert.equal(other?.startsAligned(made), false, "another DirectIo's buffers are its own");
    } finally {
      other?.close();
    }
  } finally {
    io.close();
  }
});
