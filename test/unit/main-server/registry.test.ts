import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { Registry } from '../../../src/main-server/registry.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-registry-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const TIMEOUT_MS = 2000;
const stats = { totalBytes: 100, freeBytes: 50, usedBytes: 10, chunkCount: 0 };
const id = 'ab'.repeat(16);

/** A registry on a fresh store with a clock the test moves; `lines` has every log message. */
function registryOn(store: SqliteStore, clock: { now: number }) {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l).msg) });
  return { registry: new Registry(store, log, () => clock.now, TIMEOUT_MS), lines };
}

/** A TLS registry whose address probe finds, at any address, the id that asks. */
function registryWhereEveryAddressAnswers(store: SqliteStore, clock: { now: number }) {
  return new Registry(
    store,
    pino({ level: 'silent' }),
    () => clock.now,
    TIMEOUT_MS,
    600_000,
    'https',
    async () => true,
  );
}

test('a server that beats again before any sweep saw it silent is logged down, then up again', async () => {
  const store = new SqliteStore(join(dir, 'a.db'));
  const clock = { now: 1_000 };
  const { registry, lines } = registryOn(store, clock);
  await registry.register({ id, port: 7001, stats }, '127.0.0.1');
  clock.now += 500;
  registry.heartbeat(id, stats);
  assert.deepEqual(
    lines.filter((l) => /is (down|up)/.test(l)),
    [],
    'a beat within the timeout logs no transition',
  );

  clock.now += TIMEOUT_MS + 1_000; // silent past the timeout, and no sweep ran meanwhile
  registry.heartbeat(id, stats);
  assert.deepEqual(
    lines.filter((l) => /is (down|up)/.test(l)),
    ['file server is down (no heartbeat)', 'file server is up again'],
  );
  store.close();
});

test('after main restarts, a server it had not yet seen is only noted up when it beats', async () => {
  const store = new SqliteStore(join(dir, 'b.db'));
  const clock = { now: 1_000 };
  await registryOn(store, clock).registry.register({ id, port: 7001, stats }, '127.0.0.1');
  clock.now += TIMEOUT_MS + 1_000;
  const restarted = registryOn(store, clock);
  restarted.registry.heartbeat(id, stats);
  assert.deepEqual(
    restarted.lines.filter((l) => /is (down|up)/.test(l)),
    [],
  );
  store.close();
});

test('a sweep tells of a server once when it is lost, and again only after it came back and was lost anew', async () => {
  const store = new SqliteStore(join(dir, 'c.db'));
  const clock = { now: 1_000 };
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l).msg) });
  const registry = new Registry(store, log, () => clock.now, TIMEOUT_MS, 10_000);
  const told: string[] = [];
  registry.onLost = (server) => told.push(server);
  await registry.register({ id, port: 7001, stats }, '127.0.0.1');
  clock.now += TIMEOUT_MS + 5_000;
  registry.sweep();
  assert.deepEqual(told, [], 'down, but not yet lost');
  clock.now += 6_000;
  registry.sweep();
  registry.sweep();
  assert.deepEqual(told, [id], 'lost: told once');
  assert.ok(lines.some((l) => /is lost/.test(l)));
  registry.heartbeat(id, stats);
  registry.sweep();
  clock.now += TIMEOUT_MS + 11_000;
  registry.sweep();
  assert.deepEqual(told, [id, id], 'back, then lost again: told again');
  store.close();
});

test("a main restarted after a long stop does not count its own downtime as the servers' silence: none is lost or back at the start, one that never beats again is lost after --lost-after", async () => {
  const store = new SqliteStore(join(dir, 'restart-lost.db'));
  const clock = { now: 1_000 };
  const [other, gone] = ['cd'.repeat(16), 'ef'.repeat(16)];
  const first = registryOn(store, clock).registry;
  await first.register({ id: gone, port: 7003, stats }, '127.0.0.1');
  // `gone` went silent two hours before main stopped; the other two beat until it did.
  clock.now += 2 * 3600_000;
  await first.register({ id, port: 7001, stats }, '127.0.0.1');
  await first.register({ id: other, port: 7002, stats }, '127.0.0.1');
  // Main was down an hour.
  clock.now += 3600_000;
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l).msg) });
  const restarted = new Registry(store, log, () => clock.now, TIMEOUT_MS, 10_000);
  const told: string[] = [];
  restarted.onLost = (server) => told.push(server);
  clock.now += TIMEOUT_MS + 1;
  restarted.sweep();
  assert.deepEqual(told, [gone], 'only the one silent long before the stop is lost');
  assert.equal(restarted.heartbeat(id, stats), false, 'a server heard until main stopped is not "back"');
  assert.ok(!lines.some((l) => /came back/.test(l)));
  assert.equal(restarted.heartbeat(gone, stats), true, 'the one lost before the stop is');
  // `other` never beats again: lost once main has not heard it for the timeout and --lost-after.
  clock.now += 8_000;
  restarted.sweep();
  assert.deepEqual(told, [gone], 'not yet');
  clock.now += TIMEOUT_MS;
  restarted.sweep();
  assert.deepEqual(told, [gone, other]);
  assert.deepEqual(
    restarted
      .counted()
      .map((s) => s.id)
      .sort(),
    [id, gone].sort(),
  );
  store.close();
});

test('a TLS cluster takes only https:// file-server URLs: registration refuses another (or a url that is not a URL), and a server recorded at one is not used', async () => {
  const store = new SqliteStore(join(dir, 'scheme.db'));
  const clock = { now: 1_000 };
  const { registry, lines } = registryOn(store, clock);
  for (const url of ['http://10.0.0.1:80', 'http://files.example:7001'])
    await assert.rejects(registry.register({ id, port: 7001, url, stats }, '127.0.0.1'), {
      code: 'SEDFS_ERR_BAD_REQUEST',
    });
  await assert.rejects(registry.register({ id, port: 7001, url: 'https://[files', stats }, '127.0.0.1'), {
    code: 'SEDFS_ERR_BAD_REQUEST',
    message: 'url is not a URL',
  });
  assert.equal(store.getServer(id), undefined, 'nothing recorded');
  assert.throws(() => registry.urlFor('http://10.0.0.1:80', '127.0.0.1', 1), {
    code: 'SEDFS_ERR_BAD_REQUEST',
  });
  assert.equal((await registry.register({ id, port: 7001, stats }, '10.0.0.9')).url, 'https://10.0.0.9:7001');
  assert.deepEqual(
    registry.live().map((s) => s.id),
    [id],
  );
  // As one registered before main refused it: up, but never handed out.
  const other = 'cd'.repeat(16);
  store.registerServer(
    { id: other, url: 'http://10.0.0.2:80', ...stats, registeredAt: clock.now, lastHeartbeat: clock.now },
    'k',
  );
  assert.deepEqual(
    registry.live().map((s) => s.id),
    [id],
  );
  registry.live();
  assert.equal(lines.filter((l) => /not https/.test(l)).length, 1, 'logged once');
  // Plain HTTP clusters (--insecure-http) reach servers at http:// URLs.
  const plain = new Registry(store, pino({ level: 'silent' }), () => clock.now, TIMEOUT_MS, 600_000, 'http');
  assert.deepEqual(
    plain
      .live()
      .map((s) => s.id)
      .sort(),
    [id, other].sort(),
  );
  store.close();
});

test("main expects at a file server's endpoint the certificate of a server registered there, never of one removed", async () => {
  const store = new SqliteStore(join(dir, 'names.db'));
  const clock = { now: 1_000 };
  const { registry } = registryOn(store, clock);
  const [a, b] = ['a1'.repeat(16), 'b2'.repeat(16)];
  await registry.register({ id: a, port: 7001, url: 'https://files.example:7001', stats }, '10.0.0.1');
  await registry.register({ id: b, port: 7002, stats }, '10.0.0.2');
  assert.deepEqual(registry.idsAt('files.example:7001'), [a]);
  assert.deepEqual(registry.idsAt('10.0.0.2:7002'), [b]);
  assert.equal(
    registry.idsAt('10.0.0.1:7001'),
    undefined,
    'no server registered at the address it came from',
  );
  store.markRemoved(a, clock.now);
  assert.equal(registry.idsAt('files.example:7001'), undefined);
  store.close();
});

test('another server id that is not what answers at the address of a server whose copies still count cannot register there until that one is lost or removed, and a lost one is then expected there no more', async () => {
  const store = new SqliteStore(join(dir, 'address.db'));
  const clock = { now: 1_000 };
  const { registry } = registryOn(store, clock);
  const [a, b, c, d] = ['a1', 'b2', 'c3', 'd4'].map((x) => x.repeat(16)) as [string, string, string, string];
  const at = (server: string, host: string) => ({
    id: server,
    port: 7001,
    url: `https://${host}:7001`,
    stats,
  });
  await registry.register(at(a, 'files.example'), '10.0.0.1');
  await registry.register(at(c, 'other.example'), '10.0.0.3');
  await assert.rejects(registry.register(at(b, 'files.example'), '10.0.0.2'), { code: 'SEDFS_ERR_EXISTS' });
  assert.equal(store.getServer(b), undefined);
  await registry.register(at(a, 'files.example'), '10.0.0.1'); // the same server again is fine
  clock.now += TIMEOUT_MS + 1_000; // both down, but their copies still count
  await assert.rejects(registry.register(at(b, 'files.example'), '10.0.0.2'), { code: 'SEDFS_ERR_EXISTS' });
  await assert.rejects(registry.register(at(d, 'other.example'), '10.0.0.4'), { code: 'SEDFS_ERR_EXISTS' });
  store.markRemoved(c, clock.now);
  await registry.register(at(d, 'other.example'), '10.0.0.4');
  clock.now += 600_000; // lost: its copies no longer count
  await registry.register(at(b, 'files.example'), '10.0.0.2');
  assert.deepEqual(registry.idsAt('other.example:7001'), [d]);
  assert.deepEqual(registry.idsAt('files.example:7001'), [b], 'the lost one is expected there no more');
  assert.equal(store.getServer(a)?.url, '');
  store.close();
});

test('another server id takes over an address only when what answers there proves to be it: the one there before is then used nowhere until it registers again', async () => {
  const store = new SqliteStore(join(dir, 'takeover.db'));
  const clock = { now: 1_000 };
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l).msg) });
  /** the server id that answers at each URL, as main's probe would find it */
  const answering = new Map<string, string>();
  const asked: string[] = [];
  const registry = new Registry(
    store,
    log,
    () => clock.now,
    TIMEOUT_MS,
    600_000,
    'https',
    async (url, server) => {
      asked.push(url);
      return answering.get(url) === server;
    },
  );
  const [a, b] = ['a1', 'b2'].map((x) => x.repeat(16)) as [string, string];
  const url = 'https://files.example:7001';
  await registry.register({ id: a, port: 7001, url, stats }, '10.0.0.1');
  assert.deepEqual(asked, [], 'no one to ask about a free address');
  answering.set(url, a);
  await assert.rejects(registry.register({ id: b, port: 7001, url, stats }, '10.0.0.2'), {
    code: 'SEDFS_ERR_EXISTS',
  });
  assert.deepEqual(asked, [url]);
  assert.equal(store.getServer(b), undefined);
  assert.deepEqual(registry.idsAt('files.example:7001'), [a]);

  answering.set(url, b); // a's data folder wiped, a new server started at its address
  await registry.register({ id: b, port: 7001, url, stats }, '10.0.0.2');
  assert.deepEqual(registry.idsAt('files.example:7001'), [b], 'main expects only the new one there');
  assert.equal(store.getServer(a)?.url, '');
  assert.deepEqual(
    registry.live().map((s) => s.id),
    [b],
  );
  assert.ok(lines.some((l) => /no longer at its address/.test(l)));
  // If the old one is still running somewhere, its next beat has it register again.
  assert.throws(() => registry.heartbeat(a, stats), { code: 'SEDFS_ERR_UNKNOWN_SERVER' });
  await registry.register({ id: a, port: 7001, url: 'https://files2.example:7001', stats }, '10.0.0.3');
  assert.deepEqual(
    registry
      .live()
      .map((s) => s.id)
      .sort(),
    [a, b].sort(),
  );
  store.close();
});

test('on plain HTTP too, a server whose address another server took is not used until it registers again', async () => {
  const store = new SqliteStore(join(dir, 'takeover-http.db'));
  const clock = { now: 1_000 };
  const log = pino({ level: 'silent' });
  const registry = new Registry(
    store,
    log,
    () => clock.now,
    TIMEOUT_MS,
    600_000,
    'http',
    async () => true,
  );
  const [a, b] = ['a1', 'b2'].map((x) => x.repeat(16)) as [string, string];
  await registry.register({ id: a, port: 7001, stats }, '10.0.0.1');
  await registry.register({ id: b, port: 7001, stats }, '10.0.0.1');
  assert.deepEqual(
    registry.live().map((s) => s.id),
    [b],
  );
  store.close();
});

test('an address handover that cannot be recorded (a full disk) leaves the address with the server that had it', async () => {
  const store = new SqliteStore(join(dir, 'handover-fails.db'));
  const clock = { now: 1_000 };
  const registry = registryWhereEveryAddressAnswers(store, clock);
  const [a, b] = ['a1', 'b2'].map((x) => x.repeat(16)) as [string, string];
  const url = 'https://files.example:7001';
  await registry.register({ id: a, port: 7001, url, stats }, '10.0.0.1');
  // The new server's row cannot be written, as on a full disk.
  store.db.exec(
    `CREATE TRIGGER full BEFORE INSERT ON servers WHEN NEW.id = '${b}' BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`,
  );
  await assert.rejects(registry.register({ id: b, port: 7001, url, stats }, '10.0.0.2'), /disk is full/);
  assert.equal(store.getServer(a)?.url, url);
  assert.deepEqual(registry.idsAt('files.example:7001'), [a]);
  store.close();
});

test('a server that registered at an address while main asked it about another id is not displaced unchecked: that other registration is refused, and tried again', async () => {
  const store = new SqliteStore(join(dir, 'handover-race.db'));
  const clock = { now: 1_000 };
  const [a, b, c] = ['a1', 'b2', 'c3'].map((x) => x.repeat(16)) as [string, string, string];
  const url = 'https://files.example:7001';
  let meanwhile = async () => {};
  const registry = new Registry(
    store,
    pino({ level: 'silent' }),
    () => clock.now,
    TIMEOUT_MS,
    600_000,
    'https',
    async () => {
      await meanwhile();
      return true;
    },
  );
  await registry.register({ id: a, port: 7001, url, stats }, '10.0.0.1');
  meanwhile = async () => {
    meanwhile = async () => {};
    await registry.register({ id: c, port: 7001, url, stats }, '10.0.0.3');
  };
  await assert.rejects(registry.register({ id: b, port: 7001, url, stats }, '10.0.0.2'), {
    code: 'SEDFS_ERR_EXISTS',
  });
  assert.deepEqual(registry.idsAt('files.example:7001'), [c], 'c, checked against a, took the address');
  assert.equal(store.getServer(b), undefined);
  // Tried again, b is asked about against c, and takes it.
  await registry.register({ id: b, port: 7001, url, stats }, '10.0.0.2');
  assert.deepEqual(registry.idsAt('files.example:7001'), [b]);
  assert.equal(store.getServer(c)?.url, '');
  store.close();
});

test("main reads the server list for a file server's expected ids only after an address changed, and the answer follows each change at once", async () => {
  const store = new SqliteStore(join(dir, 'ids-cache.db'));
  const clock = { now: 1_000 };
  const registry = registryWhereEveryAddressAnswers(store, clock);
  let reads = 0;
  const list = store.listServers.bind(store);
  store.listServers = () => {
    reads++;
    return list();
  };
  const [a, b] = ['a1', 'b2'].map((x) => x.repeat(16)) as [string, string];
  const at = (id: string, host: string) => ({ id, port: 7001, url: `https://${host}:7001`, stats });
  await registry.register(at(a, 'one.example'), '10.0.0.1');
  assert.deepEqual(registry.idsAt('one.example:7001'), [a]);
  const before = reads;
  for (let i = 0; i < 100; i++) registry.idsAt(i % 2 ? 'one.example:7001' : 'two.example:7001');
  registry.heartbeat(a, stats);
  assert.deepEqual(registry.idsAt('one.example:7001'), [a]);
  assert.equal(reads, before, 'no read while nothing moved');
  await registry.register(at(b, 'one.example'), '10.0.0.2'); // takes a's address
  assert.deepEqual(registry.idsAt('one.example:7001'), [b]);
  await registry.register(at(a, 'two.example'), '10.0.0.1'); // a registers again elsewhere
  assert.deepEqual(registry.idsAt('two.example:7001'), [a]);
  store.markRemoved(b, clock.now); // an admin's removal, straight in the store
  assert.equal(registry.idsAt('one.example:7001'), undefined);
  store.forgetAddress(a);
  assert.equal(registry.idsAt('two.example:7001'), undefined);
  store.close();
});

test('a server whose beats main cannot record (its disk is full) is still up: main heard it', async () => {
  const store = new SqliteStore(join(dir, 'full.db'));
  const clock = { now: 1_000 };
  const { registry } = registryOn(store, clock);
  await registry.register({ id, port: 7001, stats }, '127.0.0.1');
  const record = store.heartbeat.bind(store);
  store.heartbeat = () => {
    throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  };
  for (let i = 0; i < 5; i++) {
    clock.now += TIMEOUT_MS / 2;
    assert.throws(() => registry.heartbeat(id, stats), /disk is full/);
  }
  assert.deepEqual(
    registry.live().map((s) => s.id),
    [id],
    `heard ${TIMEOUT_MS / 2} ms ago, recorded ${TIMEOUT_MS * 2.5} ms ago`,
  );
  clock.now += TIMEOUT_MS + 1;
  assert.deepEqual(registry.live(), [], 'silent past the timeout: down');
  store.heartbeat = record;
  store.close();
});
