import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterClient } from '../../../src/client/cluster-client.js';
import { fetchManifest } from '../../../src/client/fetch-blob.js';
import { sha256Hex } from '../../../src/crypto/hash.js';
import type { SedfsError } from '../../../src/protocol/errors.js';
import type { BlobManifest } from '../../../src/protocol/main-api.js';
import { seededBytes } from '../../helpers/seeded.js';
import { collector } from '../../helpers/sinks.js';

const stored = seededBytes(31, 4096);
const id = sha256Hex(stored);
const manifest: BlobManifest = {
  id: 'b'.repeat(32),
  size: stored.length,
  chunks: [
    {
      index: 0,
      id,
      size: stored.length,
      ticket: 't',
      replicas: [
        { id: '1'.repeat(32), url: 'https://one' },
        { id: '2'.repeat(32), url: 'https://two' },
      ],
    },
  ],
};

/** A client whose servers answer `bodies[url]`, and which notes the replicas reported bad. */
function fakeClient(bodies: Record<string, Buffer>) {
  const reported: string[] = [];
  const client = {
    chunks: {
      get: async (url: string, _ticket: string, size: number, into: Buffer) => {
        const body = bodies[new URL(url).origin] as Buffer;
        body.copy(into);
        return into.subarray(0, Math.min(size, body.length));
      },
    },
    reportBadReplica: async (_chunk: string, server: string) => {
      reported.push(server);
    },
  } as unknown as ClusterClient;
  return { client, reported };
}

/** Opens a chunk whose tag checks: here, one that starts with the stored bytes' first byte. */
const openIf = (good: (b: Buffer) => boolean) => (b: Buffer) => {
  if (!good(b)) throw new Error('tag mismatch');
  return b;
};

test('a copy that does not open is reported once another copy opens: its bytes were wrong', async () => {
  const garbled = Buffer.from(stored);
  garbled[0] = (garbled[0] as number) ^ 1;
  const { client, reported } = fakeClient({ 'https://one': garbled, 'https://two': stored });
  const out = collector();
  await fetchManifest(client, manifest, out.sink, { open: openIf((b) => b[0] === stored[0]) });
  assert.deepEqual(reported, ['1'.repeat(32)]);
  assert.deepEqual(out.bytes(), stored);
});

test('copies that are the chunk but do not open fail as the manifest’s or key’s fault, and no server is reported', async () => {
  const { client, reported } = fakeClient({ 'https://one': stored, 'https://two': stored });
  await assert.rejects(
    fetchManifest(client, manifest, collector().sink, { open: openIf(() => false) }),
    (err: SedfsError) => err.code === 'SEDFS_ERR_CORRUPT_CHUNK' && /does not open/.test(err.message),
  );
  assert.deepEqual(reported, []);
});
