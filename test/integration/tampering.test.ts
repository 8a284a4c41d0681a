import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { rootSealContext } from '../../src/client/account.js';
import type { ClusterClient } from '../../src/client/cluster-client.js';
import type { FileSystem } from '../../src/client/file-system.js';
import { sealTo } from '../../src/crypto/identity.js';
import { newNodeKey } from '../../src/crypto/node-keys.js';
import type { SedfsError } from '../../src/protocol/errors.js';
import type { ContentResponse } from '../../src/protocol/namespace-api.js';
import { runSedfs, TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser } from '../helpers/users.js';

const CHUNK = 64 * 1024;

describe('tampering with stored data is caught', () => {
  let cluster: TestCluster;
  let fs: FileSystem;
  let client: ClusterClient;

  before(async () => {
    cluster = await TestCluster.start({ servers: 3, replicas: 3 });
    ({ client, fs } = await newUser(cluster, 'tamper'));
  });
  after(async () => {
    await client?.close();
    await cluster?.stop();
  });

  async function storeFile(path: string, seed: number): Promise<{ data: Buffer; content: ContentResponse }> {
    const data = seededBytes(seed, 4 * CHUNK + 100);
    await fs.put([data], path, { chunkBytes: CHUNK });
    const node = await fs.resolve(path);
    const content = await client.call<ContentResponse>('GET', `/v1/nodes/${node.entry.id}/content`);
    return { data, content };
  }

  /** Paths of one chunk's file on every server. */
  const replicasOf = (chunkId: string) =>
    [0, 1, 2].map((i) => cluster.chunkPath(i, chunkId)).filter(existsSync);

  function flipByte(path: string, at: number): void {
    const bytes = readFileSync(path);
    bytes[at] = (bytes[at] as number) ^ 0x01;
    writeFileSync(path, bytes);
  }

  test("a home folder main swaps in for a user (a key of its own, sealed to their public key) is refused by the user's profile: nothing is read or written there", async () => {
    const work = mkdtempSync(join(tmpdir(), 'sedfs-root-'));
    const env = { SEDFS_HOME: join(work, 'p'), SEDFS_MAIN: cluster.mainUrl, SEDFS_PASSPHRASE: 'pw' };
    const db = new Database(join(cluster.mainData, 'main.db'));
    try {
      assert.equal((await runSedfs(['signup', 'swapped'], env)).code, 0);
      assert.equal((await runSedfs(['write', '/mine.txt', 'secret'], env)).code, 0);
      // Main, turned hostile: a fresh home key, sealed to the user's box key, which it knows.
      const user = db
        .prepare('SELECT id, box_key, root_id, root_sealed FROM users WHERE name = ?')
        .get('swapped') as {
        id: string;
        box_key: string;
        root_id: string;
        root_sealed: string;
      };
      const forged = sealTo(user.box_key, newNodeKey(), rootSealContext(user.root_id)).toString('base64url');
      db.prepare('UPDATE users SET root_sealed = ? WHERE id = ?').run(forged, user.id);
      for (const args of [['ls'], ['write', '/new.txt', 'for main to read']]) {
        const res = await runSedfs(args, env);
        assert.notEqual(res.code, 0);
        assert.match(
          res.stderr,
          /main gave swapped a home folder other than the one this profile opened there before/,
        );
      }
      db.prepare('UPDATE users SET root_sealed = ? WHERE id = ?').run(user.root_sealed, user.id);
      assert.equal((await runSedfs(['cat', '/mine.txt'], env)).stdout, 'secret\n');
      // Keys from before home folders were remembered: the first command remembers it.
      const keyFile = join(work, 'p', 'keys', 'swapped.json');
      const { roots, ...older } = JSON.parse(readFileSync(keyFile, 'utf8')) as { roots?: object };
      assert.ok(roots);
      writeFileSync(keyFile, JSON.stringify(older));
      assert.equal((await runSedfs(['ls'], env)).code, 0);
      assert.deepEqual((JSON.parse(readFileSync(keyFile, 'utf8')) as { roots?: object }).roots, roots);
    } finally {
      db.close();
      rmSync(work, { recursive: true, force: true });
    }
  });

  test('one flipped byte in one replica: the read comes from a good replica, byte-identical', async () => {
    const { data, content } = await storeFile('/flip-one', 1);
    const victim = content.manifest.chunks[1]?.id as string;
    const paths = replicasOf(victim);
    assert.equal(paths.length, 3);
    // Flip on the replica the manifest lists first, so the reader meets it first.
    const first = content.manifest.chunks[1]?.replicas[0]?.id as string;
    const index = cluster.fileServers.findIndex((f) => f.id === first);
    flipByte(cluster.chunkPath(index, victim), 10);
    const out = collector();
    await fs.get('/flip-one', out.sink);
    assert.deepEqual(out.bytes(), data);
    // Main's log reaches its file a moment after the report is answered.
    await waitFor('the reader’s report in main’s log', () =>
      /replica reported corrupt by a reader/.test(readFileSync(join(cluster.mainData, 'main.log'), 'utf8')),
    );
  });

  test('a flipped byte in every replica: the read fails with a clear error and returns no wrong bytes', async () => {
    const { content } = await storeFile('/flip-all', 2);
    const victim = content.manifest.chunks[2]?.id as string;
    for (const p of replicasOf(victim)) flipByte(p, 5);
    const out = collector();
    await assert.rejects(fs.get('/flip-all', out.sink), { code: 'SEDFS_ERR_ALL_REPLICAS_FAILED' });
    // Only the two chunks before the bad one were written, and they are right.
    assert.equal(out.bytes().length, 2 * CHUNK);
  });

  test('two chunks of a file swapped on every server: the read fails, nothing wrong is returned', async () => {
    const { content } = await storeFile('/swapped', 3);
    const a = content.manifest.chunks[0]?.id as string;
    const b = content.manifest.chunks[1]?.id as string;
    for (let i = 0; i < 3; i++) {
      const pa = cluster.chunkPath(i, a);
      const pb = cluster.chunkPath(i, b);
      renameSync(pa, `${pa}.tmp`);
      renameSync(pb, pa);
      renameSync(`${pa}.tmp`, pb);
    }
    const out = collector();
    await assert.rejects(fs.get('/swapped', out.sink), { code: 'SEDFS_ERR_ALL_REPLICAS_FAILED' });
    assert.equal(out.bytes().length, 0);
  });

  test('a manifest with its chunks reordered or repeated is refused before a byte is written', async () => {
    const { content } = await storeFile('/reordered', 5);
    const node = await fs.resolve('/reordered');
    const chunks = content.manifest.chunks;
    const tampered: [string, typeof chunks][] = [
      ['swapped', [chunks[1], chunks[0], ...chunks.slice(2)] as typeof chunks],
      ['repeated', [chunks[0], chunks[0], ...chunks.slice(2)] as typeof chunks],
    ];
    for (const [what, order] of tampered) {
      const out = collector();
      await assert.rejects(
        fs.get(node, out.sink, { content: { ...content, manifest: { ...content.manifest, chunks: order } } }),
        (err: SedfsError) => {
          assert.equal(err.code, 'SEDFS_ERR_CORRUPT_CHUNK', what);
          assert.match(err.message, /out of order/, what);
          return true;
        },
      );
      assert.equal(out.bytes().length, 0, what);
    }
  });

  test('a manifest cut short on main is detected, with or without the size changed to match', async () => {
    const { content } = await storeFile('/cut', 4);
    const db = new Database(join(cluster.mainData, 'main.db'));
    try {
      const blobId = db
        .prepare('SELECT blob_id FROM versions WHERE id = ?')
        .pluck()
        .get(content.version.id) as string;
      db.prepare('DELETE FROM blob_chunks WHERE blob_id = ? AND idx = 4').run(blobId);
      await assert.rejects(fs.get('/cut', collector().sink), { code: 'SEDFS_ERR_CORRUPT_CHUNK' });
      // A cleverer cut also shrinks the size: the chunk now last was not sealed as last.
      db.prepare('UPDATE versions SET size = ? WHERE id = ?').run(4 * CHUNK, content.version.id);
      const out = collector();
      // Its copies are whole (they hash to its id): the fault is named as the manifest's.
      await assert.rejects(fs.get('/cut', out.sink), (err: SedfsError) => {
        assert.equal(err.code, 'SEDFS_ERR_CORRUPT_CHUNK');
        assert.match(err.message, /stored whole on its servers but does not open/);
        return true;
      });
      assert.equal(out.bytes().length, 3 * CHUNK);
    } finally {
      db.close();
    }
  });
});
