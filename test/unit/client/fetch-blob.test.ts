import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import type { ClusterClient } from '../../../src/client/cluster-client.js';
import { fetchManifest } from '../../../src/client/fetch-blob.js';
import { Unanswering } from '../../../src/client/unanswering.js';
import { sha256Hex } from '../../../src/crypto/hash.js';
import { SedfsError } from '../../../src/protocol/errors.js';
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

/** A client whose servers answer `bodies[url]` (the n-th after n × `delayMs`), and which notes the replicas reported bad. */
function fakeClient(bodies: Record<string, Buffer>, delayMs = 0) {
  const reported: string[] = [];
  const named: string[] = [];
  let calls = 0;
  const client = {
    chunkUrl: (url: string) => url,
    unanswering: new Unanswering(),
    chunks: {
      get: async (url: string, _ticket: string, size: number, into: Buffer, expected?: string[]) => {
        named.push(`${new URL(url).origin} ${expected?.join(',')}`);
        // Each answer later than the one before: the writer is ahead of the chunks.
        calls++;
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs * calls));
        const body = bodies[new URL(url).origin] as Buffer;
        body.copy(into);
        return into.subarray(0, Math.min(size, body.length));
      },
    },
    reportBadReplica: async (_chunk: string, server: string) => {
      reported.push(server);
    },
  } as unknown as ClusterClient;
  return { client, reported, named };
}

/** Opens a chunk whose tag checks: here, one that starts with the stored bytes' first byte. */
const openIf = (good: (b: Buffer) => boolean) => (b: Buffer) => {
  if (!good(b)) throw new Error('tag mismatch');
  return b;
};

test('a copy that does not open is reported once another copy opens: its bytes were wrong', async () => {
  const garbled = Buffer.from(stored);
  garbled[0] = (garbled[0] as number) ^ 1;
  const { client, reported, named } = fakeClient({ 'https://one': garbled, 'https://two': stored });
  const out = collector();
  await fetchManifest(client, manifest, out.sink, { open: openIf((b) => b[0] === stored[0]) });
  assert.deepEqual(reported, ['1'.repeat(32)]);
  assert.deepEqual(
    named,
    [`https://one ${'1'.repeat(32)}`, `https://two ${'2'.repeat(32)}`],
    'each copy is read only from the server main named there (its certificate is checked)',
  );
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

test('an output that fails mid-download fails the download at once, rather than waiting for it to drain', async () => {
  const three: BlobManifest = {
    ...manifest,
    size: 3 * stored.length,
    chunks: [0, 1, 2].map((index) => ({ ...(manifest.chunks[0] as BlobManifest['chunks'][number]), index })),
  };
  const { client } = fakeClient({ 'https://one': stored, 'https://two': stored }, 30);
  // Fails its first write while the next chunk is still on its way: a full disk.
  const out = new Writable({
    write(_c, _e, cb) {
      setImmediate(() => cb(new Error('ENOSPC: no space left on device')));
    },
  });
  await assert.rejects(fetchManifest(client, three, out), /ENOSPC/);
});

test('a server that did not answer one chunk is the last tried for the chunks after it', async () => {
  const { client, named } = fakeClient({ 'https://two': stored });
  const get = client.chunks.get.bind(client.chunks);
  (client.chunks as { get: typeof get }).get = async (url, ...rest) => {
    if (new URL(url).origin === 'https://one') {
      named.push('https://one (no answer)');
      throw new SedfsError('SEDFS_ERR_UNREACHABLE', 'https://one took no data for 10 s');
    }
    return get(url, ...rest);
  };
  const first = manifest.chunks[0] as BlobManifest['chunks'][number];
  const twice: BlobManifest = {
    ...manifest,
    size: stored.length * 3,
    chunks: [0, 1, 2].map((index) => ({ ...first, index })),
  };
  const out = collector();
  await fetchManifest(client, twice, out.sink, { concurrency: 1 });
  assert.equal(out.bytes().length, stored.length * 3);
  assert.deepEqual(named, [
    'https://one (no answer)',
    `https://two ${'2'.repeat(32)}`,
    `https://two ${'2'.repeat(32)}`,
    `https://two ${'2'.repeat(32)}`,
  ]);
  assert.ok(client.unanswering.has('1'.repeat(32)));
});
