import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ClusterClient } from '../../../src/client/cluster-client.js';
import { parseConfig } from '../../../src/common/config.js';
import { syncDir } from '../../../src/common/files.js';
import { type RunningFileServer, startFileServer } from '../../../src/file-server/file-server.js';
import { FILE_SERVER_CONFIG } from '../../../src/file-server/file-server-config.js';
import { MAIN_CONFIG } from '../../../src/main-server/main-config.js';
import { type RunningMain, startMain } from '../../../src/main-server/main-server.js';
import { seededBytes } from '../../helpers/seeded.js';
import { collector } from '../../helpers/sinks.js';
import { newUser, type TestUser } from '../../helpers/users.js';

test('a file server whose data folder refuses to fsync directories (EINVAL) starts, joins over TLS, stores and serves files, and logs that once at warn', {
  timeout: 60_000,
}, async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-nodirsync-'));
  const fsData = join(root, 'fs1');
  const refused: string[] = [];
  // Like a FUSE or network file system: files fsync, directories do not (main's own
  // folder is on a working one).
  const dirSync = async (dir: string) => {
    if (!dir.startsWith(root)) return syncDir(dir);
    refused.push(dir);
    throw Object.assign(new Error(`EINVAL: invalid argument, fsync '${dir}'`), { code: 'EINVAL' });
  };
  await withOneServer(root, fsData, { console: false, syncDir: dirSync }, async (user) => {
    // Two chunks as chunk files, and small files as one batch, stored as a pack.
    const big = seededBytes(1, 5 * 1024 * 1024);
    await user.fs.put([big], '/big.bin');
    const small = Array.from({ length: 5 }, (_, i) => ({ name: `s${i}`, data: seededBytes(10 + i, 500) }));
    await user.fs.putMany('/', small);
    const out = collector();
    await user.fs.get('/big.bin', out.sink);
    assert.ok(out.bytes().equals(big), 'the big file reads back');
    for (const f of small) {
      const one = collector();
      await user.fs.get(`/${f.name}`, one.sink);
      assert.ok(one.bytes().equals(f.data), f.name);
    }
    assert.ok(
      readdirSync(join(fsData, 'packs')).some((n) => n.endsWith('.pack')),
      'the batch became a pack',
    );
    assert.ok(
      refused.some((d) => d.startsWith(join(fsData, 'chunks'))),
      'chunk folders were asked, and refused',
    );
    assert.ok(refused.includes(join(fsData, 'tls')), 'the certificate files were written through it too');
  });
  try {
    const warnings = readFileSync(join(fsData, 'fileserver.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('cannot fsync directories'))
      .map((l) => JSON.parse(l) as { level: number; code: string; dir: string });
    assert.equal(warnings.length, 1, 'told once');
    assert.equal(warnings[0]?.level, 40, 'at warn');
    assert.equal(warnings[0]?.code, 'EINVAL');
    // The first refusal came before the log existed (making the data folder), and was kept for it.
    assert.equal(warnings[0]?.dir, root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a file server whose data folder cannot say its free space (statfs fails) starts, joins, stores and serves files, logs that once at warn, and main shows its free space as unknown', {
  timeout: 60_000,
}, async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-nostatfs-'));
  const fsData = join(root, 'fs1');
  let asked = 0;
  const statfs = async (path: string) => {
    asked++;
    throw Object.assign(new Error(`EPERM: operation not permitted, statfs '${path}'`), { code: 'EPERM' });
  };
  // Registering sends its disk figures: with statfs failing that failed, over and over.
  await withOneServer(root, fsData, { console: false, statfs }, async (user) => {
    const big = seededBytes(2, 5 * 1024 * 1024);
    await user.fs.put([big], '/big.bin');
    const small = Array.from({ length: 5 }, (_, i) => ({ name: `s${i}`, data: seededBytes(20 + i, 500) }));
    await user.fs.putMany('/', small);
    const out = collector();
    await user.fs.get('/big.bin', out.sink);
    assert.ok(out.bytes().equals(big), 'the big file reads back');
    assert.ok(asked >= 3, `statfs was asked (${asked} times)`);
    const [server] = (await user.client.servers()).servers;
    assert.equal(server?.freeUnknown, true, 'main knows it is an estimate');
  });
  try {
    const warnings = readFileSync(join(fsData, 'fileserver.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('free space of the data folder cannot be read'))
      .map((l) => JSON.parse(l) as { level: number; code: string });
    assert.equal(warnings.length, 1, 'told once');
    assert.equal(warnings[0]?.level, 40, 'at warn');
    assert.equal(warnings[0]?.code, 'EPERM');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/**
 * Starts main and one file server (with `deps`) on `root`, signs up a user once the server
 * has joined (at most 15 s), runs `body` with them, and stops everything.
 */
async function withOneServer(
  root: string,
  fsData: string,
  deps: Parameters<typeof startFileServer>[1],
  body: (user: TestUser) => Promise<void>,
): Promise<void> {
  let main: RunningMain | undefined;
  let server: RunningFileServer | undefined;
  let client: ClusterClient | undefined;
  try {
    main = await startMain(
      parseConfig(
        MAIN_CONFIG,
        { host: '127.0.0.1', port: 0, data: join(root, 'main'), replicas: '1', openSignup: true },
        {},
      ),
      { console: false },
    );
    const config = parseConfig(
      FILE_SERVER_CONFIG,
      {
        main: main.url,
        joinToken: main.joinToken,
        caFingerprint: main.caFingerprint as string,
        host: '127.0.0.1',
        port: 0,
        data: fsData,
      },
      {},
    );
    server = await startFileServer({ ...config, main: main.url, joinToken: main.joinToken }, deps);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      server.joined,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the file server did not join within 15 s')), 15_000);
      }),
    ]).finally(() => clearTimeout(timer));
    const ca = readFileSync(join(root, 'main', 'tls', 'ca.pem'), 'utf8');
    const url = main.url;
    const user = await newUser({ newClient: () => new ClusterClient(url, { ca }) }, 'ann');
    client = user.client;
    await body(user);
  } finally {
    await client?.close();
    await server?.close();
    await main?.close();
  }
}

/**
 * Makes every fsync of a directory under `dir` fail with EINVAL, whoever asks for it, as
 * the file system underneath would: a write that syncs its folder through anything but
 * the server's tolerant sync (a plain `syncDir`, a sync argument left out) then fails.
 * An injected `syncDir` cannot see such a write. Returns the directories refused and
 * the undo.
 */
async function refuseDirectoryFsyncsUnder(dir: string): Promise<{ refused: string[]; restore: () => void }> {
  const probe = await open(import.meta.filename, 'r');
  const FileHandle = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
  await probe.close();
  const sync = FileHandle.sync;
  const refused: string[] = [];
  FileHandle.sync = async function (this: { fd: number; stat(): Promise<{ isDirectory(): boolean }> }) {
    const path = readlinkSync(`/proc/self/fd/${this.fd}`);
    if ((path === dir || path.startsWith(`${dir}/`)) && (await this.stat()).isDirectory()) {
      refused.push(path);
      throw Object.assign(new Error(`EINVAL: invalid argument, fsync '${path}'`), { code: 'EINVAL' });
    }
    return sync.call(this);
  };
  return { refused, restore: () => Object.assign(FileHandle, { sync }) };
}

/** A file server's settings with no main: joining goes on in the background and fails quietly. */
function withoutMain(data: string) {
  return {
    ...parseConfig(
      FILE_SERVER_CONFIG,
      { main: 'http://127.0.0.1:9', insecureHttp: true, host: '127.0.0.1', port: 0, data },
      {},
    ),
    main: 'http://127.0.0.1:9',
    joinToken: 'unused',
  };
}

test('a file server on a file system that refuses to fsync directories writes its server-id and address there with its own sync, and keeps its id across a restart', {
  timeout: 60_000,
}, async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-nodirsync-ids-'));
  const fsData = join(root, 'fs1');
  const { refused, restore } = await refuseDirectoryFsyncsUnder(fsData);
  const config = withoutMain(fsData);
  let server: RunningFileServer | undefined;
  try {
    server = await startFileServer(config, { console: false });
    const id = server.id;
    assert.equal(readFileSync(join(fsData, 'server-id'), 'utf8'), `${id}\n`, 'server-id written');
    assert.equal(readFileSync(join(fsData, 'fileserver.addr'), 'utf8'), `${server.url}\n`, 'address written');
    assert.ok(refused.includes(fsData), 'the data folder was asked, and refused');
    await server.close();
    server = undefined;
    // A second start reads the id back and writes the address again.
    server = await startFileServer(config, { console: false });
    assert.equal(server.id, id, 'the same server after a restart');
    assert.equal(readFileSync(join(fsData, 'fileserver.addr'), 'utf8'), `${server.url}\n`);
  } finally {
    await server?.close();
    restore();
    rmSync(root, { recursive: true, force: true });
  }
});

test('a file server whose start fails after it began listening lets go of its port', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-failed-start-'));
  const fsData = join(root, 'fs1');
  // Its address file cannot be written: a folder stands where it goes.
  mkdirSync(join(fsData, 'fileserver.addr'), { recursive: true });
  const config = withoutMain(fsData);
  const listeners = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
  const before = listeners();
  try {
    await assert.rejects(startFileServer(config, { console: false }), { code: 'EISDIR' });
    // A closed handle leaves the list once the event loop has run its close callback.
    for (let i = 0; i < 50 && listeners() > before; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(listeners(), before);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a file server whose start fails (its port taken) lets its data folder go: started again in this process, it holds the folder by its lock', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-failed-start-'));
  const fsData = join(root, 'fs1');
  const taken = createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  let server: RunningFileServer | undefined;
  try {
    const port = (taken.address() as AddressInfo).port;
    await assert.rejects(startFileServer({ ...withoutMain(fsData), port }, { console: false }), {
      code: 'EADDRINUSE',
    });
    assert.equal(existsSync(join(fsData, 'server.pid')), false, 'no mark says a server holds the folder');
    server = await startFileServer(withoutMain(fsData), { console: false });
    assert.match(
      readFileSync(join(fsData, 'server.pid'), 'utf8'),
      new RegExp(`^${process.pid}\nfileserver\nlock sedfs-`),
    );
  } finally {
    await server?.close();
    taken.close();
    rmSync(root, { recursive: true, force: true });
  }
});
