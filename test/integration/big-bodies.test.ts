import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import type { ClusterClient } from '../../src/client/cluster-client.js';
import { share, unshare } from '../../src/client/sharing.js';
import { SedfsError } from '../../src/protocol/errors.js';
import { COMMIT_BODY_LIMIT } from '../../src/protocol/main-api.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { MemoryPins } from '../helpers/pins.js';
import { collector } from '../helpers/sinks.js';
import { newUser, type TestUser } from '../helpers/users.js';

const MiB = 1024 * 1024;
/** Main's budget for big bodies in these tests (`--big-bodies-mib`); half of it per user. */
const BUDGET = 16 * MiB;
const BODY = 4 * MiB;

/**
 * A POST to main with a JSON body of `length` bytes that this side sends only as far as
 * the test says, on a connection of its own: main holds what it has read of it until
 * the last byte comes, or turns it away before.
 */
class HeldBody {
  private received = '';
  /** main's whole answer, or '' if the connection ended without one */
  readonly answer: Promise<string>;
  private readonly body: Buffer;
  private sent = 0;

  private constructor(
    private readonly socket: Socket,
    length: number,
  ) {
    // Valid JSON that the commit and rekey schemas refuse (400) once it is read and parsed.
    const head = '{"chunks":[],"pad":"';
    this.body = Buffer.alloc(length, 0x61);
    this.body.write(head, 0, 'latin1');
    this.body.write('"}', length - 2, 'latin1');
    this.answer = new Promise((resolve) => {
      const done = () => resolve(this.whole() ?? '');
      socket.on('data', (d: Buffer) => {
        this.received += d.toString('latin1');
        const whole = this.whole();
        if (whole !== undefined) resolve(whole);
      });
      socket.on('error', done);
      socket.on('close', done);
    });
  }

  static async open(base: string, ca: string | undefined, path: string, token: string, length: number) {
    const url = new URL(base);
    const socket =
      url.protocol === 'https:'
        ? tlsConnect({ host: url.hostname, port: Number(url.port), ...(ca ? { ca } : {}) })
        : netConnect(Number(url.port), url.hostname);
    await new Promise<void>((ok, fail) => {
      socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => ok());
      socket.once('error', fail);
    });
    const held = new HeldBody(socket, length);
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`,
    );
    return held;
  }

  private whole(): string | undefined {
    const end = this.received.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(this.received.slice(0, end))?.[1] ?? 0);
    return this.received.length >= end + 4 + length ? this.received : undefined;
  }

  /** Sends the body up to byte `upTo`; resolves once the socket took it (or ended). */
  sendUpTo(upTo: number): Promise<void> {
    const part = this.body.subarray(this.sent, upTo);
    this.sent = upTo;
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.socket.write(part, () => resolve()));
  }

  /** Sends all but the last byte: main holds the body, unparsed. */
  holdAlmostAll(): Promise<void> {
    return this.sendUpTo(this.body.length - 1);
  }

  finish(): Promise<void> {
    return this.sendUpTo(this.body.length);
  }

  /** The answer, or '' if none came within `ms`. */
  answerWithin(ms: number): Promise<string> {
    return Promise.race([this.answer, sleep(ms).then(() => '')]);
  }

  abort(): void {
    this.socket.destroy();
  }
}

const statusOf = (answer: string) => /^HTTP\/1\.1 (\d+)/.exec(answer)?.[1];
const codeOf = (answer: string) => /"code":"(SEDFS_ERR_[A-Z_]+)"/.exec(answer)?.[1];

describe('main reads only so many big request bodies at once', () => {
  let cluster: TestCluster;
  const users: Record<string, TestUser> = {};
  const uploads: Record<string, string> = {};

  before(async () => {
    cluster = await TestCluster.start({
      servers: 1,
      replicas: 1,
      mainArgs: ['--big-bodies-mib', String(BUDGET / MiB)],
    });
    for (const name of ['ann', 'bob', 'cy', 'dee']) {
      const user = await newUser(cluster, name);
      users[name] = user;
      uploads[name] = (await user.client.beginUpload(1)).uploadId;
    }
  });
  after(async () => {
    for (const u of Object.values(users)) await u.client.close();
    await cluster?.stop();
  });

  const commitBody = (name: string, length = BODY) =>
    HeldBody.open(
      cluster.mainUrl,
      cluster.ca,
      `/v1/uploads/${uploads[name]}/commit`,
      (users[name] as TestUser).client.token as string,
      length,
    );

  /** Main's resident memory now (Linux's /proc), bytes. */
  const mainRss = () => {
    const status = readFileSync(`/proc/${cluster.main.proc.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
  };

  test('big bodies beyond the budget, or beyond a user’s half of it, are refused before main reads them (503 SEDFS_ERR_BUSY, Retry-After), and main’s memory stays within the budget', {
    timeout: 120_000,
  }, async () => {
    const rssBefore = mainRss();
    // Ann takes her half of the budget, and is refused a third body while half is free.
    const held = [await commitBody('ann'), await commitBody('ann')];
    for (const h of held) await h.holdAlmostAll();
    const annMore = await commitBody('ann');
    await annMore.sendUpTo(1024);
    const annAnswer = await annMore.answerWithin(10_000);
    assert.equal(statusOf(annAnswer), '503', `ann's third body: ${annAnswer}`);
    assert.equal(codeOf(annAnswer), 'SEDFS_ERR_BUSY');
    // Bob takes the other half: the budget is full.
    for (const h of [await commitBody('bob'), await commitBody('bob')]) {
      held.push(h);
      await h.holdAlmostAll();
    }
    // Five times the budget more, from everyone at once: each is told no from its
    // headers. One main did not refuse is sent nearly whole, as a sender would, so main
    // would hold it.
    const flood = await Promise.all(
      ['ann', 'bob', 'cy', 'dee'].flatMap((name) =>
        Array.from({ length: 5 }, async () => {
          const body = await commitBody(name);
          await body.sendUpTo(1024);
          const answer = await body.answerWithin(10_000);
          if (answer === '') await body.holdAlmostAll();
          return { body, answer };
        }),
      ),
    );
    // The most main holds over a second: what the kernel had of the bodies is read by then.
    let rssHeld = 0;
    for (let i = 0; i < 10; i++, await sleep(100)) rssHeld = Math.max(rssHeld, mainRss());
    for (const { answer } of flood) {
      assert.equal(statusOf(answer), '503', answer || 'no answer: main is reading the body');
      assert.equal(codeOf(answer), 'SEDFS_ERR_BUSY');
      assert.match(answer, /\r\nretry-after: 1\r\n/i);
    }
    assert.ok(
      rssHeld - rssBefore < BUDGET + 16 * MiB,
      `main grew by ${((rssHeld - rssBefore) / MiB).toFixed(0)} MiB holding bodies (budget ${BUDGET / MiB} MiB)`,
    );
    for (const { body } of flood) body.abort();
    // The bodies it did read are answered once whole (the schema refuses them), and
    // their bytes are given back: a body fits again.
    for (const h of held) {
      await h.finish();
      assert.equal(statusOf(await h.answer), '400');
    }
    const later = await commitBody('cy');
    await later.finish();
    const laterAnswer = await later.answer;
    assert.equal(statusOf(laterAnswer), '400', laterAnswer);
    assert.equal(codeOf(laterAnswer), 'SEDFS_ERR_BAD_REQUEST');
    await waitFor('the refusals in main’s log', () =>
      readFileSync(join(cluster.mainData, 'main.log'), 'utf8').includes('big request bodies refused for now'),
    );
  });

  /** Records the codes of the errors main answers `client`'s calls with. */
  function refusalsOf(client: ClusterClient): string[] {
    const codes: string[] = [];
    const call = client.call.bind(client);
    client.call = (async (...args: Parameters<ClusterClient['call']>) => {
      try {
        return await call(...args);
      } catch (err) {
        if (err instanceof SedfsError) codes.push(err.code);
        throw err;
      }
    }) as ClusterClient['call'];
    return codes;
  }

  /** Takes the whole budget with two bodies main waits for the rest of. */
  async function fillBudget(): Promise<HeldBody[]> {
    const held = [await commitBody('cy', BUDGET / 2), await commitBody('dee', BUDGET / 2)];
    for (const h of held) await h.sendUpTo(1024);
    return held;
  }

  test('a body declaring more than its route takes is refused at once as too large, unread, even while the budget is full', {
    timeout: 120_000,
  }, async () => {
    const held = await fillBudget();
    try {
      // Refused as busy instead, Node would read and drop every byte it declares.
      const huge = await commitBody('ann', COMMIT_BODY_LIMIT + 1);
      try {
        const answer = await huge.answerWithin(15_000);
        assert.equal(statusOf(answer), '413', answer);
        assert.equal(codeOf(answer), 'SEDFS_ERR_BODY_TOO_LARGE');
      } finally {
        huge.abort();
      }
    } finally {
      for (const h of held) h.abort();
    }
  });

  test('a client sending a big body main refuses as busy is told SEDFS_ERR_BUSY, not a broken connection', {
    timeout: 120_000,
  }, async () => {
    const ann = users.ann as TestUser;
    const held = await fillBudget();
    try {
      // Unread by main, 8 MiB the client is still sending when the answer comes.
      await assert.rejects(
        ann.client.call('POST', `/v1/uploads/${uploads.ann}/commit`, {
          chunks: [],
          pad: 'a'.repeat(8 * MiB),
        }),
        { code: 'SEDFS_ERR_BUSY' },
      );
    } finally {
      for (const h of held) h.abort();
    }
  });

  test('a put whose commit main refuses as busy is sent again, and lands once the bodies ahead of it are abandoned', {
    timeout: 120_000,
  }, async () => {
    const ann = users.ann as TestUser;
    const held = await fillBudget();
    const refused = refusalsOf(ann.client);
    const put = ann.fs.put([Buffer.from('waited its turn')], '/patient.txt');
    await waitFor('the commit refused as busy', () => refused.includes('SEDFS_ERR_BUSY'), 30_000);
    // Cut off half-sent: their bytes are given back as their connections close.
    for (const h of held) h.abort();
    await put;
    const out = collector();
    await ann.fs.get('/patient.txt', out.sink);
    assert.equal(out.bytes().toString(), 'waited its turn');
  });

  test('an unshare whose key rotation main refuses as busy sends it again, and finishes once the bodies ahead of it are abandoned', {
    timeout: 120_000,
  }, async () => {
    const ann = users.ann as TestUser;
    await ann.fs.mkdir('/proj');
    await share(ann.fs, new MemoryPins(), '/proj', 'bob', 'read');
    const held = await fillBudget();
    const refused = refusalsOf(ann.client);
    const revoke = unshare(ann.fs, new MemoryPins(), '/proj', 'bob');
    await waitFor('the rotation refused as busy', () => refused.includes('SEDFS_ERR_BUSY'), 30_000);
    for (const h of held) h.abort();
    assert.equal((await revoke).nodes, 1);
  });
});
