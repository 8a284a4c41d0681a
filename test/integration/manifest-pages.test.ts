import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fetchBlob } from '../../src/client/fetch-blob.js';
import { storeBlob } from '../../src/client/store-blob.js';
import { sha256Hex } from '../../src/crypto/hash.js';
import type { SedfsError } from '../../src/protocol/errors.js';
import { MANIFEST_PAGE } from '../../src/protocol/limits.js';
import type { ContentResponse } from '../../src/protocol/namespace-api.js';
import { TestCluster } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser, type TestUser } from '../helpers/users.js';

const CHUNK = 16 * 1024;
/** more chunks than one page of the manifest */
const CHUNKS = MANIFEST_PAGE + 44;
let cluster: TestCluster;
let user: TestUser;

before(async () => {
  // Tickets live three seconds: a download of several outlives them (a put's placements
  // must still outlive a loaded machine's pauses: one second did not leave room for that).
  cluster = await TestCluster.start({ servers: 2, replicas: 2, mainArgs: ['--ticket-ttl', '3'] });
  await cluster.waitUp(2);
  user = await newUser(cluster, 'pager');
});
after(async () => {
  await user?.client.close();
  await cluster?.stop();
});

/** A sink that waits `ms` before taking each chunk, and runs `first` before the first. */
function slowSink(ms: number, first?: () => Promise<void>) {
  const parts: Buffer[] = [];
  let started = false;
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      parts.push(Buffer.from(c));
      const go = started || !first ? Promise.resolve() : first();
      started = true;
      go.then(() => delay(ms)).then(() => cb(), cb);
    },
  });
  return { sink, bytes: () => Buffer.concat(parts) };
}

test('main lists a large file’s chunks a page at a time, each page with its own tickets', async () => {
  await user.fs.put([seededBytes(91, CHUNKS * CHUNK)], '/paged.bin', { chunkBytes: CHUNK });
  const node = await user.fs.resolve('/paged.bin');
  const first = await user.client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
  assert.equal(first.manifest.chunks.length, MANIFEST_PAGE);
  const rest = await user.client.call<ContentResponse>(
    'GET',
    `/v1/nodes/${node.entry.id}/content?from=${MANIFEST_PAGE}`,
  );
  assert.deepEqual(
    rest.manifest.chunks.map((c) => c.index),
    Array.from({ length: CHUNKS - MANIFEST_PAGE }, (_, k) => MANIFEST_PAGE + k),
  );
  const end = await user.client.call<ContentResponse>(
    'GET',
    `/v1/nodes/${node.entry.id}/content?from=${CHUNKS}`,
  );
  assert.deepEqual(end.manifest.chunks, [], 'just past the last chunk: an empty page');
  await assert.rejects(
    user.client.call('GET', `/v1/nodes/${node.entry.id}/content?from=${CHUNKS + 1}`),
    (err: SedfsError) => err.code === 'SEDFS_ERR_BAD_REQUEST',
  );
  await assert.rejects(
    user.client.call('GET', `/v1/blobs/${first.manifest.id}`),
    (err: SedfsError) => err.code === 'SEDFS_ERR_NOT_FOUND',
    "a file's version is read through the file, not as a bare blob, even by whoever committed it",
  );
});

test('a bare blob of more chunks than one page is read whole, its manifest asked for page by page', async () => {
  const data = seededBytes(96, (MANIFEST_PAGE + 3) * 1024);
  const res = await storeBlob(user.client, [data], { replicas: 2, chunkBytes: 1024 });
  const manifest = await user.client.manifest(res.blobId);
  assert.equal(manifest.chunks.length, MANIFEST_PAGE + 3);
  const out = collector();
  await fetchBlob(user.client, res.blobId, out.sink);
  assert.equal(sha256Hex(out.bytes()), sha256Hex(data));
});

test('a file of more chunks than one manifest page downloads whole', async () => {
  const data = seededBytes(92, CHUNKS * CHUNK - 1000);
  await user.fs.put([data], '/whole.bin', { chunkBytes: CHUNK });
  const out = collector();
  const got = await user.fs.get('/whole.bin', out.sink);
  assert.equal(got.size, data.length);
  assert.equal(sha256Hex(out.bytes()), sha256Hex(data));
});

test('a download that outlives its read tickets is given fresh ones and finishes', async () => {
  const data = seededBytes(93, 24 * CHUNK);
  await user.fs.put([data], '/slow.bin', { chunkBytes: CHUNK });
  // 24 chunks taken 300 ms apart, fetched GET_AHEAD (8) ahead of the one written: the
  // last are fetched about 5 s after the tickets were made.
  const out = slowSink(300);
  const call = user.client.call.bind(user.client);
  const renewals: string[] = [];
  user.client.call = ((method, path, ...rest) => {
    if (path.includes('/content?from=')) renewals.push(path);
    return call(method, path, ...rest);
  }) as typeof call;
  try {
    await user.fs.get('/slow.bin', out.sink);
  } finally {
    user.client.call = call;
  }
  assert.equal(sha256Hex(out.bytes()), sha256Hex(data));
  assert.ok(renewals.length > 0, 'fresh tickets were asked for');
});

test('a file replaced while it is read fails the download as replaced, not with bytes of two versions', async () => {
  await user.fs.put([seededBytes(94, CHUNKS * CHUNK)], '/replaced.bin', { chunkBytes: CHUNK });
  const out = slowSink(0, async () => {
    await user.fs.put([seededBytes(95, CHUNKS * CHUNK)], '/replaced.bin', { chunkBytes: CHUNK });
  });
  await assert.rejects(
    user.fs.get('/replaced.bin', out.sink),
    (err: SedfsError) => err.code === 'SEDFS_ERR_VERSION_CONFLICT' && /was replaced/.test(err.message),
  );
});
