import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ClusterClient } from '../../../src/client/cluster-client.js';
import { parseConfig } from '../../../src/common/config.js';
import { MAIN_CONFIG } from '../../../src/main-server/main-config.js';
import { type RunningMain, startMain } from '../../../src/main-server/main-server.js';
import { newUser } from '../../helpers/users.js';

/** Directory fsyncs under `root` fail with `code`, as on a FUSE or network file system. */
function refusingUnder(root: string, code: string) {
  const refused: string[] = [];
  const sync = async (dir: string) => {
    if (!dir.startsWith(root)) throw new Error(`a directory outside the test's folder was synced: ${dir}`);
    refused.push(dir);
    throw Object.assign(new Error(`${code}: fsync '${dir}'`), { code });
  };
  return { refused, sync };
}

const configFor = (data: string) =>
  parseConfig(MAIN_CONFIG, { host: '127.0.0.1', port: 0, data, replicas: '1', openSignup: true }, {});

test('main whose data folder refuses to fsync directories (EINVAL) starts over TLS, serves sign-ups, starts again, and logs that once per start at warn', {
  timeout: 60_000,
}, async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-main-nodirsync-'));
  const data = join(root, 'main');
  const { refused, sync } = refusingUnder(root, 'EINVAL');
  let main: RunningMain | undefined;
  let client: ClusterClient | undefined;
  try {
    main = await startMain(configFor(data), { console: false, syncDir: sync });
    const ca = readFileSync(join(data, 'tls', 'ca.pem'), 'utf8');
    const user = await newUser(
      { newClient: () => new ClusterClient((main as RunningMain).url, { ca }) },
      'ann',
    );
    client = user.client;
    await user.fs.mkdir('/docs');
    assert.deepEqual(
      (await user.fs.list('/')).map((e) => e.name),
      ['docs'],
    );
    for (const f of ['ticket-key.pem', 'join-token', 'join', 'main.addr'])
      assert.ok(existsSync(join(data, f)), f);
    assert.ok(refused.includes(data), 'the data folder was asked, and refused');
    assert.ok(
      refused.includes(join(data, 'tls')),
      'the CA and certificate files were written through it too',
    );
    await client.close();
    client = undefined;
    await main.close();
    main = undefined;
    // A second start reads the CA, token and key back, and writes its certificate, address and join string again.
    const before = refused.length;
    main = await startMain(configFor(data), { console: false, syncDir: sync });
    assert.ok(refused.length > before, 'the second start wrote through it');
    assert.equal(readFileSync(join(data, 'main.addr'), 'utf8').trim(), main.url);
  } finally {
    await client?.close();
    await main?.close();
  }
  try {
    const warnings = readFileSync(join(data, 'main.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('cannot fsync directories'))
      .map((l) => JSON.parse(l) as { level: number; code: string; dir: string });
    assert.equal(warnings.length, 2, 'told once by each start');
    for (const w of warnings) {
      assert.equal(w.level, 40, 'at warn');
      assert.equal(w.code, 'EINVAL');
    }
    // The first start's first sync is of the data folder's own entry (made durably, before
    // the log: told once the log is up); the second's, its new certificate.
    assert.deepEqual(
      warnings.map((w) => w.dir),
      [root, join(data, 'tls')],
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('main whose directory fsync fails otherwise (EIO) does not start', { timeout: 30_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-main-dirsync-eio-'));
  try {
    const { sync } = refusingUnder(root, 'EIO');
    await assert.rejects(
      async () => (await startMain(configFor(join(root, 'main')), { console: false, syncDir: sync })).close(),
      { code: 'EIO' },
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('main whose start fails (its port taken) lets its data folder go: started again in this process, it holds the folder by its lock', {
  timeout: 30_000,
}, async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-main-failed-start-'));
  const data = join(root, 'main');
  const taken = createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  let main: RunningMain | undefined;
  try {
    const port = (taken.address() as AddressInfo).port;
    await assert.rejects(startMain({ ...configFor(data), port }, { console: false }), { code: 'EADDRINUSE' });
    assert.equal(existsSync(join(data, 'server.pid')), false, 'no mark says a server holds the folder');
    main = await startMain(configFor(data), { console: false });
    assert.match(
      readFileSync(join(data, 'server.pid'), 'utf8'),
      new RegExp(`^${process.pid}\nmain\nlock sedfs-`),
    );
  } finally {
    await main?.close();
    taken.close();
    rmSync(root, { recursive: true, force: true });
  }
});
