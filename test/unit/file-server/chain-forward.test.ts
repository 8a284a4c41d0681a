import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { Agent } from 'undici';
import { forward } from '../../../src/file-server/chain-forward.js';
import type { FileServerContext } from '../../../src/file-server/context.js';
import type { SedfsError } from '../../../src/protocol/errors.js';

test('a file server on TLS forwards a chunk to no peer at a plain http:// URL: that replica fails, and nothing reaches it', async () => {
  let requests = 0;
  const peer = createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => res.end('{"receipts":[],"failed":[]}'));
  });
  peer.listen(0, '127.0.0.1');
  await once(peer, 'listening');
  const url = `http://127.0.0.1:${(peer.address() as { port: number }).port}/v1/chunks/${'ab'.repeat(32)}`;
  const agent = new Agent();
  try {
    const onTls = forward({ tls: true, agent } as unknown as FileServerContext, url, {
      'content-length': '3',
    });
    onTls.push(Buffer.from('abc'));
    onTls.end();
    const answer = (await onTls.result()) as { error: SedfsError };
    assert.equal(answer.error.code, 'SEDFS_ERR_INSECURE_URL');
    assert.equal(requests, 0);
    // On plain HTTP (--insecure-http) peers are reached so.
    const plain = forward({ tls: false, agent } as unknown as FileServerContext, url, {
      'content-length': '3',
    });
    plain.push(Buffer.from('abc'));
    plain.end();
    assert.deepEqual(await plain.result(), { receipts: [], failed: [] });
    assert.equal(requests, 1);
  } finally {
    await agent.close();
    peer.close();
  }
});

/**
 * A next server that takes every byte of a chunk, then answers the chunk after
 * `answerAfterMs` (never, if undefined) and its health check only if `healthy`.
 */
async function slowPeer(answerAfterMs: number | undefined, healthy: boolean) {
  const peer = createServer((req, res) => {
    req.resume();
    if (req.url === '/v1/health') {
      if (healthy) res.end('{"id":"x","joined":true}');
      return;
    }
    req.on('end', () => {
      if (answerAfterMs !== undefined)
        setTimeout(
          () => res.end('{"receipts":[{"server":"next","receipt":"r"}],"failed":[]}'),
          answerAfterMs,
        );
    });
  });
  peer.listen(0, '127.0.0.1');
  await once(peer, 'listening');
  const url = `http://127.0.0.1:${(peer.address() as { port: number }).port}/v1/chunks/${'ab'.repeat(32)}`;
  return {
    url,
    close: () => {
      peer.closeAllConnections();
      peer.close();
    },
  };
}

function forwardChunk(url: string, agent: Agent) {
  const body = Buffer.alloc(1024 * 1024, 7);
  const down = forward({ tls: false, agent } as unknown as FileServerContext, url, {
    'content-length': String(body.length),
  });
  down.push(body);
  down.end();
  return down.result();
}

// Each waits out at least one STALL_MS: run side by side.
describe('the next server in the chain', { concurrency: true }, () => {
  test('answering nothing, not even its health check, fails as unreachable within two waits, not undici’s minute', {
    timeout: 40_000,
  }, async () => {
    const peer = await slowPeer(undefined, false);
    const agent = new Agent();
    try {
      const answer = (await forwardChunk(peer.url, agent)) as { error: SedfsError };
      assert.equal(answer.error.code, 'SEDFS_ERR_UNREACHABLE');
      assert.match(answer.error.message, /has not answered for 10 s, nor answered a health check$/);
    } finally {
      peer.close();
      await agent.destroy();
    }
  });

  test('taking no more of the body, nor answering its health check, fails as unreachable: it took no data', {
    timeout: 40_000,
  }, async () => {
    // Accepts connections and reads nothing: the body fills the socket's buffers and stops.
    const sockets: Socket[] = [];
    const peer = createNetServer((socket) => sockets.push(socket));
    peer.listen(0, '127.0.0.1');
    await once(peer, 'listening');
    const url = `http://127.0.0.1:${(peer.address() as { port: number }).port}/v1/chunks/${'ab'.repeat(32)}`;
    const agent = new Agent();
    try {
      const body = Buffer.alloc(64 * 1024 * 1024, 7);
      const down = forward({ tls: false, agent } as unknown as FileServerContext, url, {
        'content-length': String(body.length),
      });
      // As a server's upstream does: on, as fast as the next server takes it.
      let heldUp = 0;
      const result = down.result();
      for (let at = 0; at < body.length; at += 256 * 1024) {
        const wait = down.push(body.subarray(at, at + 256 * 1024));
        if (!wait) continue;
        heldUp += 1;
        await wait;
      }
      const answer = (await result) as { error: SedfsError };
      assert.ok(heldUp > 0, 'the upstream was held up, not let run ahead of the next server');
      assert.equal(answer.error.code, 'SEDFS_ERR_UNREACHABLE');
      assert.match(answer.error.message, /took no data for 10 s, nor answered a health check$/);
    } finally {
      for (const s of sockets) s.destroy();
      peer.close();
      await agent.destroy();
    }
  });

  test('slow to answer while its health check answers (it waits on the servers after it), is waited for', {
    timeout: 40_000,
  }, async () => {
    const peer = await slowPeer(15_000, true);
    const agent = new Agent();
    try {
      assert.deepEqual(await forwardChunk(peer.url, agent), {
        receipts: [{ server: 'next', receipt: 'r' }],
        failed: [],
      });
    } finally {
      peer.close();
      await agent.destroy();
    }
  });
});
