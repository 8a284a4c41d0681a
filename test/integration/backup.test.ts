import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { login } from '../../src/client/account.js';
import { FileSystem } from '../../src/client/file-system.js';
import type { CheckResponse } from '../../src/protocol/main-api.js';
import { runSedfs, TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser, type TestUser } from '../helpers/users.js';

describe('sedfs backup', () => {
  let cluster: TestCluster;
  let gina: TestUser;
  const kept = seededBytes(41, 300_000);

  before(async () => {
    cluster = await TestCluster.start({ servers: 2, replicas: 2 });
    gina = await newUser(cluster, 'gina');
    await gina.fs.put([kept], '/kept.bin', { chunkBytes: 64 * 1024 });
  });
  after(() => cluster?.stop());

  test('a copy taken while main runs restores what was there; what came later is gone, its chunks found as extras', async () => {
    const dest = join(cluster.root, 'backup');
    const r = await runSedfs(['backup', '--data', cluster.mainData, dest]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /backed up main's state to .*main\.db.*ticket-key\.pem.*ca-key\.pem/);
    // Secrets, every one: the folder and the snapshot are the user's alone.
    assert.equal(statSync(dest).mode & 0o777, 0o700);
    for (const f of ['main.db', 'ticket-key.pem', 'tls/ca-key.pem', 'join-token'])
      assert.equal(statSync(join(dest, f)).mode & 0o077, 0, f);
    // Written after the snapshot: the restored main never heard of it.
    await gina.fs.put([seededBytes(42, 200_000)], '/later.bin', { chunkBytes: 64 * 1024 });
    await gina.client.close();

    await cluster.stopMain('SIGKILL');
    rmSync(cluster.mainData, { recursive: true });
    cpSync(dest, cluster.mainData, { recursive: true });
    await cluster.startMain();
    await cluster.waitUp(2);

    const client = cluster.newClient();
    try {
      await login(client, 'gina', gina.identity);
      const fs = await FileSystem.open(client, gina.identity);
      assert.deepEqual(
        (await fs.list('/')).map((e) => e.name),
        ['kept.bin'],
      );
      const out = collector();
      await fs.get('/kept.bin', out.sink);
      assert.deepEqual(out.bytes(), kept);
      // Both servers were registered before the snapshot, so their beats go on as if
      // nothing happened; only a whole inventory shows later.bin's chunks on them.
      // The cluster's admin (signed in before the snapshot): `check` is theirs to read.
      const admin = await cluster.client();
      const check = await waitFor('every server compared, later.bin found as extra', async () => {
        const c = await admin.call<CheckResponse>('GET', '/v1/check');
        return c.servers.every((s) => s.inventoryAt > 0 && s.extra > 0) && c;
      });
      assert.equal(check.servers.length, 2);
    } finally {
      await client.close();
    }
  });

  test('refuses a destination that exists, and a folder that is not a main data folder', async () => {
    const there = join(cluster.root, 'there');
    mkdirSync(there);
    const exists = await runSedfs(['backup', '--data', cluster.mainData, there]);
    assert.equal(exists.code, 1);
    assert.match(exists.stderr, /exists: back up into a new folder/);

    const notMain = await runSedfs([
      'backup',
      '--data',
      cluster.fileServers[0]?.data as string,
      join(cluster.root, 'b2'),
    ]);
    assert.equal(notMain.code, 1);
    assert.match(notMain.stderr, /holds no main\.db: is it a main server's data folder\?/);
  });

  test('a backup that fails part way (a main.db that is not a database) leaves no folder behind', async () => {
    const fake = join(cluster.root, 'fake-main');
    mkdirSync(fake);
    writeFileSync(join(fake, 'main.db'), 'not a database at all, just text that goes on for a while');
    writeFileSync(join(fake, 'ticket-key.pem'), 'key');
    const dest = join(cluster.root, 'half');
    const r = await runSedfs(['backup', '--data', fake, dest]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not a database/);
    assert.equal(existsSync(dest), false, 'the key copied before the failure went with its folder');
  });
});
