import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { createAgent } from '../../../src/common/http-client.js';
import { generateTicketKeyPem, ticketSigner } from '../../../src/crypto/tickets.js';
import { ChunkStore } from '../../../src/file-server/chunk-store.js';
import { MainLink } from '../../../src/file-server/main-link.js';
import { LISTED_AFTER_HEADER } from '../../../src/protocol/main-api.js';

const root = mkdtempSync(join(tmpdir(), 'sedfs-main-link-'));
after(() => rmSync(root, { recursive: true, force: true }));

test("the inventory a file server sends on joining names the time of main's answer it follows, and none when main gave none", async () => {
  for (const at of [1_795_000_000_123, undefined]) {
    const inventories: IncomingMessage['headers'][] = [];
    // A main stand-in: answers the registration (with `at` or, like a main before it,
    // without) and notes the inventory's headers.
    const main = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url?.endsWith('/inventory')) inventories.push(req.headers);
        const body = req.url?.endsWith('/register')
          ? {
              id: 'a'.repeat(32),
              url: 'http://127.0.0.1:1',
              receiptKey: Buffer.alloc(32).toString('base64url'),
              ticketPublicKey: ticketSigner(generateTicketKeyPem()).publicKeyPem,
              heartbeatIntervalMs: 60_000,
              ...(at === undefined ? {} : { at }),
            }
          : { reported: 0, missing: 0, extra: 0 };
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((res) => main.listen(0, '127.0.0.1', res));
    const store = new ChunkStore(join(root, String(at)), 1024 * 1024);
    await store.init();
    const agent = createAgent();
    const link = new MainLink(
      {
        mainUrl: `http://127.0.0.1:${(main.address() as { port: number }).port}`,
        joinToken: 'token',
        serverId: 'a'.repeat(32),
        port: 1,
      },
      store,
      agent,
      pino({ level: 'silent' }),
    );
    try {
      await link.start();
      assert.equal(inventories.length, 1);
      assert.equal(inventories[0]?.[LISTED_AFTER_HEADER], at === undefined ? undefined : String(at));
    } finally {
      link.stop();
      await agent.close();
      await new Promise((res) => main.close(res));
    }
  }
});
