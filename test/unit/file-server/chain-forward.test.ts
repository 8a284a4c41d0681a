import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { test } from 'node:test';
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
