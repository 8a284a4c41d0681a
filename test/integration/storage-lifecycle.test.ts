import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { login, signup } from '../../src/client/account.js';
import type { ClusterClient } from '../../src/client/cluster-client.js';
import { FileSystem } from '../../src/client/file-system.js';
import { Profile } from '../../src/client/profile.js';
import { fingerprintOf } from '../../src/crypto/certificates.js';
import type { SecretIdentity } from '../../src/crypto/identity.js';
import type { ContentResponse } from '../../src/protocol/namespace-api.js';
import { spawnSedfs, TestCluster, waitFor } from '../helpers/cluster.js';
import { allFiles } from '../helpers/files.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';

const CHUNK = 64 * 1024;

describe('storage lifecycle: freeing, versions, interrupted and concurrent puts', () => {
  let cluster: TestCluster;
  let client: ClusterClient;
  let fs: FileSystem;
  let identityFor: (c: ClusterClient) => Promise<FileSystem>;
  let doraIdentity: SecretIdentity;

  /** Chunk files on every file server's disk. */
  const chunkFiles = () => cluster.fileServers.flatMap((f) => allFiles(join(f.data, 'chunks')));

  before(async () => {
    // Freed chunks wait 1 s, not a read ticket's lifetime, so their deletion shows here;
    // an upload not committed in 6 s is collected (every put here must commit within it,
    // however loaded the machine: 2 s left too little room).
    cluster = await TestCluster.start({
      servers: 3,
      replicas: 3,
      mainArgs: ['--upload-ttl', '6', '--freed-grace', '1'],
    });
    client = cluster.newClient();
    const { identity } = await signup(client, 'dora');
    doraIdentity = identity;
    await login(client, 'dora', identity);
    fs = await FileSystem.open(client, identity);
    identityFor = async (c) => {
      await login(c, 'dora', identity);
      return FileSystem.open(c, identity);
    };
  });
  after(async () => {
    await client?.close();
    await cluster?.stop();
  });

  async function chunkIdsOf(path: string): Promise<string[]> {
    const node = await fs.resolve(path);
    const c = await client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
    return c.manifest.chunks.map((x) => x.id);
  }

  test('rm -r of a folder of small files (stored in packs) frees every pack on every file server', async () => {
    const packFiles = () =>
      cluster.fileServers.flatMap((f) => allFiles(join(f.data, 'packs'))).filter((p) => p.endsWith('.pack'));
    const before = new Set(packFiles());
    await fs.mkdir('/small');
    await fs.putMany(
      '/small',
      Array.from({ length: 80 }, (_, i) => ({ name: `s${i}`, data: seededBytes(700 + i, 2000 + i) })),
    );
    const made = packFiles().filter((p) => !before.has(p));
    assert.ok(made.length >= 3, `packs on every server (${made.length})`);
    await fs.rm('/small', { recursive: true });
    await waitFor('the packs to be deleted', () => made.every((p) => !packFiles().includes(p)));
  });

  test('deleting most small files of a folder compacts their packs on every server, and the rest still read', async () => {
    const packFiles = () =>
      cluster.fileServers.flatMap((f) => allFiles(join(f.data, 'packs'))).filter((p) => p.endsWith('.pack'));
    const bytesOf = (paths: string[]) =>
      paths.reduce((n, p) => n + (statSync(p, { throwIfNoEntry: false })?.size ?? 0), 0);
    const before = new Set(packFiles());
    const ours = () => packFiles().filter((p) => !before.has(p));
    await fs.mkdir('/mostly-gone');
    const files = Array.from({ length: 60 }, (_, i) => ({ name: `m${i}`, data: seededBytes(900 + i, 3000) }));
    await fs.putMany('/mostly-gone', files);
    const full = bytesOf(ours());
    assert.ok(full >= 3 * 60 * 3000, `every server packed every file (${full} bytes)`);
    for (const f of files.slice(0, 45)) await fs.rm(`/mostly-gone/${f.name}`);
    // Without compaction the packs would keep all their bytes until their last chunk went.
    await waitFor('the packs to be compacted', () => bytesOf(ours()) < full / 2 || undefined);
    for (const f of files.slice(45)) {
      const out = collector();
      await fs.get(`/mostly-gone/${f.name}`, out.sink);
      assert.ok(out.bytes().equals(f.data));
    }
  });

  test('rm deletes the file’s chunks from every file server', async () => {
    await fs.put([seededBytes(1, 3 * CHUNK)], '/gone.bin', { chunkBytes: CHUNK });
    const ids = await chunkIdsOf('/gone.bin');
    assert.equal(ids.length, 3);
    const onDisk = (id: string) => chunkFiles().some((p) => p.endsWith(id));
    assert.ok(ids.every(onDisk));
    await fs.rm('/gone.bin');
    await waitFor('the chunks to be deleted', () => ids.every((id) => !onDisk(id)));
  });

  test('a new version frees the chunks of the one it replaced', async () => {
    await fs.put([seededBytes(2, 2 * CHUNK)], '/v.bin', { chunkBytes: CHUNK });
    const old = await chunkIdsOf('/v.bin');
    await fs.put([seededBytes(3, 2 * CHUNK)], '/v.bin', { chunkBytes: CHUNK });
    const fresh = await chunkIdsOf('/v.bin');
    await waitFor('old chunks deleted', () => old.every((id) => !chunkFiles().some((p) => p.endsWith(id))));
    assert.ok(fresh.every((id) => chunkFiles().some((p) => p.endsWith(id))));
  });

  test('a client killed in the middle of a put leaves the previous version intact, and its orphans are collected', async () => {
    const v1 = seededBytes(4, 100_000);
    await fs.put([v1], '/big.bin');
    const before = chunkFiles().length;
    const local = join(cluster.root, 'big-local.bin');
    writeFileSync(local, seededBytes(5, 200 * 1024 * 1024));
    // A CLI profile logged in as dora, so the interrupted put targets the very same file.
    const profileDir = join(cluster.root, 'dora-profile');
    const side = cluster.newClient();
    const s = await login(side, 'dora', doraIdentity);
    await side.close();
    await new Profile(profileDir).saveSession({
      main: cluster.mainUrl,
      user: 'dora',
      userId: s.user.id,
      token: s.token,
      expiresAt: s.expiresAt,
      identity: doraIdentity,
    });
    const ca = cluster.ca as string;
    await new Profile(profileDir).saveTrust(cluster.mainUrl, { fingerprint: fingerprintOf(ca), ca });
    const put = spawnSedfs(['put', local, '/big.bin'], { SEDFS_HOME: profileDir });
    await waitFor(
      'some chunks of the interrupted put on disk',
      () => chunkFiles().length > before + 6,
      30_000,
    );
    put.proc.kill('SIGKILL');
    await put.exited;
    const out = collector();
    await fs.get('/big.bin', out.sink);
    assert.deepEqual(out.bytes(), v1);
    // The upload expires (--upload-ttl 6) and its chunks are deleted.
    await waitFor('orphan chunks collected', () => chunkFiles().length === before, 40_000);
  });

  test('two clients putting the same path at once: it ends as exactly one of the two, never a mix', async () => {
    const a = seededBytes(6, 5 * CHUNK + 7);
    const b = seededBytes(7, 5 * CHUNK + 7);
    const other = cluster.newClient();
    try {
      const fs2 = await identityFor(other);
      const results = await Promise.allSettled([
        fs.put([a], '/race.bin', { chunkBytes: CHUNK }),
        fs2.put([b], '/race.bin', { chunkBytes: CHUNK }),
      ]);
      for (const r of results) if (r.status === 'rejected') assert.equal(r.reason.code, 'SEDFS_ERR_EXISTS');
      assert.ok(results.some((r) => r.status === 'fulfilled'));
      const out = collector();
      await fs.get('/race.bin', out.sink);
      assert.ok(out.bytes().equals(a) || out.bytes().equals(b));
      assert.equal((await fs.list('/')).filter((e) => e.name === 'race.bin').length, 1);
    } finally {
      await other.close();
    }
  });
});
