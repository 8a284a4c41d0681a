import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { ChunkStore } from '../../../src/file-server/chunk-store.js';
import { Scrubber } from '../../../src/file-server/scrubber.js';

const root = mkdtempSync(join(tmpdir(), 'sedfs-scrub-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

async function storeWith(count: number): Promise<{ store: ChunkStore; ids: string[] }> {
  const store = new ChunkStore(join(root, `s${n++}`), 1024 * 1024);
  await store.init();
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = randomBytes(10_000);
    const id = createHash('sha256').update(bytes).digest('hex');
    const w = await store.beginWrite(id, bytes.length);
    await w.append(bytes);
    await w.commit();
    ids.push(id);
  }
  return { store, ids };
}

/** A scrubber of `store` whose reports and log lines are kept. */
function scrubberOf(store: ChunkStore, intervalSeconds = 0) {
  const reported: string[] = [];
  const lines: { msg: string; chunk?: string; reason?: string }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const scrubber = new Scrubber(
    store,
    async (ids) => {
      reported.push(...ids);
    },
    log,
    { intervalSeconds, rateMiBs: 0 },
  );
  return { scrubber, reported, lines };
}

test('a corrupt chunk that cannot be moved to quarantine is still reported, and no longer stored, listed or counted', async () => {
  const { store, ids } = await storeWith(2);
  const [bad, good] = ids as [string, string];
  const file = join(store.root, 'chunks', bad.slice(0, 2), bad);
  const bytes = readFileSync(file);
  bytes[7] = (bytes[7] as number) ^ 0xff;
  writeFileSync(file, bytes);
  // Where quarantine/ should be made, a file: the copy cannot be kept.
  writeFileSync(join(store.root, 'quarantine'), 'in the way');
  const { scrubber, reported } = scrubberOf(store);
  assert.deepEqual(await scrubber.pass(true), { checked: 2, bad: [bad] });
  assert.deepEqual(reported, [bad]);
  assert.equal(await store.has(bad), false);
  assert.equal(await store.has(good), true);
  const listed: string[] = [];
  for await (const id of store.inventory()) listed.push(id);
  assert.deepEqual(listed, [good]);
  assert.equal((await store.stats()).chunkCount, 1);
});

test('a chunk that cannot be read (EIO) is reported as bad, with a log line naming it; one deleted meanwhile is not', async () => {
  const { store, ids } = await storeWith(3);
  const [unreadable, gone, fine] = ids as [string, string, string];
  const verify = store.verify.bind(store);
  store.verify = async (id, onBytes) => {
    if (id === unreadable) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    if (id === gone) await store.remove(gone);
    return verify(id, onBytes);
  };
  const { scrubber, reported, lines } = scrubberOf(store);
  const { bad } = await scrubber.pass(true);
  assert.deepEqual(bad, [unreadable]);
  assert.deepEqual(reported, [unreadable]);
  assert.ok(
    lines.some((l) => l.msg.startsWith('scrubber could not read a chunk') && l.chunk === unreadable),
    JSON.stringify(lines),
  );
  assert.equal(await store.has(fine), true);
});

test('a pass that fails (a shard not listed once) does not end scrubbing: the next pass runs at its time', async () => {
  const { store } = await storeWith(1);
  const inventory = store.inventory.bind(store);
  let listings = 0;
  store.inventory = () => {
    listings++;
    if (listings === 1)
      throw Object.assign(new Error('EMFILE: too many open files, scandir'), { code: 'EMFILE' });
    return inventory();
  };
  const { scrubber, lines } = scrubberOf(store, 0.2);
  scrubber.start();
  try {
    const deadline = Date.now() + 10_000;
    while (!lines.some((l) => l.msg === 'scrub pass done') && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(lines.some((l) => l.msg.startsWith('scrub pass failed') && l.reason?.includes('EMFILE')));
    assert.ok(
      lines.some((l) => l.msg === 'scrub pass done'),
      JSON.stringify(lines),
    );
    assert.ok(listings >= 2);
  } finally {
    await scrubber.stop();
  }
});
