import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterClient } from '../../../src/client/cluster-client.js';

test('a client closed twice resolves both times: a second close (a finally and an after hook) does not throw', async () => {
  const client = new ClusterClient('https://127.0.0.1:1', {});
  await client.close();
  await assert.doesNotReject(client.close());
  await assert.doesNotReject(Promise.all([client.close(), client.close()]));
});
