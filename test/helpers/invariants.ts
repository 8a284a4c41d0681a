import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { TestCluster } from './cluster.js';

/** The invariant every repair scenario must keep: each referenced chunk has a good copy on some disk. */
export function assertEveryChunkHasAGoodCopy(cluster: TestCluster, ids: string[]): void {
  for (const id of ids) {
    const good = cluster.fileServers.some((f) => {
      const p = cluster.chunkPath(f.index, id);
      return existsSync(p) && createHash('sha256').update(readFileSync(p)).digest('hex') === id;
    });
    assert.ok(good, `chunk ${id} has no good copy left`);
  }
}
