import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { createAgent } from '../../../src/common/http-client.js';
import { generateTicketKeyPem, ticketSigner } from '../../../src/crypto/tickets.js';
import { Reconciler } from '../../../src/main-server/reconciler.js';
import { Registry } from '../../../src/main-server/registry.js';
import type { Repairer } from '../../../src/main-server/repairer.js';
import { SqliteStore } from '../../../src/main-server/store/sqlite-store.js';

const dir = mkdtempSync(join(tmpdir(), 'sedfs-reconciler-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (n: number, len = 32) => n.toString(16).padStart(len, '0');
const SERVER = hex(1);

/** A store with one file server at `url`, a reconciler on a clock the test moves. */
function mainOn(name: string, url: string) {
  const store = new SqliteStore(join(dir, `${name}.db`));
  const clock = { now: 1_000_000 };
  const log = pino({ level: 'silent' });
  const registry = new Registry(store, log, () => clock.now, 2000, 600_000, 'http');
  store.registerServer(
    {
      id: SERVER,
      url,
      totalBytes: 100,
      freeBytes: 50,
      usedBytes: 10,
      chunkCount: 0,
      registeredAt: 1,
      lastHeartbeat: clock.now,
    },
    'k',
  );
  const repairer = { kick: () => undefined } as unknown as Repairer;
  const agent = createAgent();
  const reconciler = new Reconciler(
    store,
    registry,
    repairer,
    ticketSigner(generateTicketKeyPem()),
    agent,
    log,
    () => clock.now,
    600_000,
  );
  /** Records chunk `n` on the server, committed at the clock's time. */
  const commit = (n: number) => {
    store.createUpload({
      id: hex(900 + n),
      replicas: 1,
      createdAt: clock.now,
      expiresAt: clock.now + 10_000,
    });
    const chunks = [{ id: hex(n, 64), size: 1, servers: [SERVER] }];
    store.commitBlob({ id: hex(500 + n), uploadId: hex(900 + n), wanted: 1, createdAt: clock.now, chunks });
  };
  const holders = (n: number) => store.replicasOf([hex(n, 64)]).get(hex(n, 64)) ?? [];
  const close = async () => {
    await agent.close();
    store.close();
  };
  return { store, clock, reconciler, commit, holders, close };
}

async function* lines(text: string) {
  yield Buffer.from(text);
}

test('an inventory main asks for keeps a replica committed while the list was on its way, and drops one recorded before it that is not listed', async () => {
  let main: ReturnType<typeof mainOn> | undefined;
  // The server lists (nothing), then chunk 2 is written and committed before main reads the list.
  const server = createServer((_req, res) => {
    const m = main as ReturnType<typeof mainOn>;
    m.clock.now += 10;
    m.commit(2);
    m.clock.now += 10;
    res.end('');
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  try {
    main = mainOn('pull', `http://127.0.0.1:${(server.address() as { port: number }).port}`);
    main.commit(1);
    main.clock.now += 10;
    const rec = main.store.getServer(SERVER);
    assert.ok(rec);
    const diff = await main.reconciler.pull(rec);
    assert.deepEqual(diff, { reported: 0, missing: 1, extra: 0 });
    assert.deepEqual(main.holders(1), []);
    assert.deepEqual(main.holders(2), [SERVER]);
  } finally {
    await main?.close();
    await new Promise((res) => server.close(res));
  }
});

test("a pushed inventory is judged from the time of main's answer it followed: replicas recorded since are kept, older unlisted ones dropped", async () => {
  const main = mainOn('push', 'http://127.0.0.1:9');
  main.commit(1);
  main.clock.now += 10;
  const answeredAt = main.reconciler.mark();
  main.clock.now += 10;
  main.commit(2);
  main.clock.now += 10;
  const diff = await main.reconciler.ingest(SERVER, lines(''), answeredAt);
  assert.deepEqual(diff, { reported: 0, missing: 1, extra: 0 });
  assert.deepEqual(main.holders(1), []);
  assert.deepEqual(main.holders(2), [SERVER]);
  await main.close();
});

test("a pushed inventory's time is never later than main's clock: a replica committed while main reads it is kept, whatever future time the server names", async () => {
  const main = mainOn('future', 'http://127.0.0.1:9');
  main.commit(1);
  main.clock.now += 10;
  async function* listThenCommit() {
    yield Buffer.from('');
    main.clock.now += 10;
    main.commit(2);
    main.clock.now += 10;
  }
  const diff = await main.reconciler.ingest(SERVER, listThenCommit(), main.clock.now + 60_000);
  assert.equal(diff.missing, 1);
  assert.deepEqual(main.holders(1), []);
  assert.deepEqual(main.holders(2), [SERVER]);
  await main.close();
});
