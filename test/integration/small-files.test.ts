import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TestCluster } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { collector } from '../helpers/sinks.js';
import { newUser, type TestUser } from '../helpers/users.js';

describe('a folder of small files goes up in batches', () => {
  let cluster: TestCluster;
  let user: TestUser;

  before(async () => {
    cluster = await TestCluster.start({ servers: 3, replicas: 3 });
    user = await newUser(cluster, 'batcher');
  });
  after(async () => {
    await user?.client.close();
    await cluster?.stop();
  });

  const read = async (path: string) => {
    const out = collector();
    await user.fs.get(path, out.sink);
    return out.bytes();
  };

  test('every file lands with its bytes, in more than one batch, beside an existing one made a new version', async () => {
    await user.fs.mkdir('/many');
    await user.fs.put([Buffer.from('old')], '/many/f0003');
    const files = Array.from({ length: 620 }, (_, i) => ({
      name: `f${String(i).padStart(4, '0')}`,
      data: seededBytes(1000 + i, 1 + ((i * 37) % 5000)),
    }));
    files.push({ name: 'empty', data: Buffer.alloc(0) });
    assert.equal(await user.fs.putMany('/many', files), files.length);
    const listed = await user.fs.list('/many');
    assert.deepEqual(listed.map((e) => e.name).sort(), files.map((f) => f.name).sort());
    for (const f of [files[0], files[3], files[499], files[500], files[619], files[620]])
      assert.deepEqual(await read(`/many/${f?.name}`), f?.data);
  });

  test('a batch that cannot commit leaves none of its files behind', async () => {
    await user.fs.mkdir('/atomic');
    const twice = { name: 'same', data: Buffer.from('one') };
    await assert.rejects(
      user.fs.putMany('/atomic', [
        twice,
        { name: 'other', data: Buffer.from('two') },
        { ...twice, data: Buffer.from('three') },
      ]),
      { code: 'SEDFS_ERR_EXISTS' },
    );
    assert.deepEqual(await user.fs.list('/atomic'), []);
  });
});
