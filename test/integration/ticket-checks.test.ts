import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { ClusterClient } from '../../src/client/cluster-client.js';
import { generateTicketKeyPem, ticketSigner } from '../../src/crypto/tickets.js';
import type { Placement, PlacementResponse } from '../../src/protocol/main-api.js';
import { TICKET_HEADER } from '../../src/protocol/ticket.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('file servers accept a chunk request only with a ticket for that chunk, operation and server', () => {
  let cluster: TestCluster;
  let client: ClusterClient;
  const x = seededBytes(1, 10_000);
  const y = seededBytes(2, 10_000);
  const xId = sha(x);
  const yId = sha(y);
  let placeX: Placement;
  let placeY: Placement;

  async function put(url: string, id: string, body: Buffer, ticket?: string) {
    const res = await request(`${url}/v1/chunks/${id}`, {
      dispatcher: cluster.agent,
      method: 'PUT',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(body.length),
        ...(ticket ? { [TICKET_HEADER]: ticket } : {}),
      },
      body,
    });
    return { status: res.statusCode, body: (await res.body.json()) as { error?: { code: string } } };
  }

  async function get(url: string, id: string, ticket?: string) {
    const res = await request(`${url}/v1/chunks/${id}`, {
      dispatcher: cluster.agent,
      headers: ticket ? { [TICKET_HEADER]: ticket } : {},
    });
    const text = await res.body.text();
    return {
      status: res.statusCode,
      code: res.statusCode >= 400 ? (JSON.parse(text).error.code as string) : '',
    };
  }

  const indexOf = (serverId: string) => cluster.fileServers.findIndex((f) => f.id === serverId);

  before(async () => {
    cluster = await TestCluster.start({ servers: 2, replicas: 1 });
    client = await cluster.client();
    const upload = await client.beginUpload(1);
    // A ticket of each chunk's own: asked without `batchTickets` (which `client.place`
    // asks for two small chunks), or X and Y placed on one server would share theirs.
    const res = await client.call<PlacementResponse>('POST', `/v1/uploads/${upload.uploadId}/placements`, {
      chunks: [
        { id: xId, size: x.length },
        { id: yId, size: y.length },
      ],
    });
    [placeX, placeY] = res.placements as [Placement, Placement];
    assert.notEqual(placeX.ticket, placeY.ticket);
  });
  after(() => cluster?.stop());

  test('a write ticket for chunk X cannot write chunk Y', async () => {
    const url = placeX.servers[0]?.url as string;
    const res = await put(url, yId, y, placeX.ticket);
    assert.equal(res.status, 403);
    assert.equal(res.body.error?.code, 'SEDFS_ERR_TICKET_MISMATCH');
  });

  test('with its own ticket the write succeeds, and a read ticket for X cannot read Y', async () => {
    const url = placeX.servers[0]?.url as string;
    assert.equal((await put(url, xId, x, placeX.ticket)).status, 200);
    assert.equal((await put(placeY.servers[0]?.url as string, yId, y, placeY.ticket)).status, 200);
    // A read ticket as main issues them, for X only.
    const signer = ticketSigner(readFileSync(join(cluster.mainData, 'ticket-key.pem'), 'utf8'));
    const servers = cluster.fileServers.map((f) => f.id);
    const readX = signer.sign({ op: 'read', chunks: [xId], servers, exp: Date.now() + 60_000 });
    assert.equal((await get(url, xId, readX)).status, 200);
    const urlY = placeY.servers[0]?.url as string;
    assert.deepEqual(await get(urlY, yId, readX), { status: 403, code: 'SEDFS_ERR_TICKET_MISMATCH' });
    // A write ticket does not read, and a read ticket does not write.
    assert.deepEqual(await get(url, xId, placeX.ticket), { status: 403, code: 'SEDFS_ERR_TICKET_MISMATCH' });
    assert.equal((await put(url, xId, x, readX)).body.error?.code, 'SEDFS_ERR_TICKET_MISMATCH');
  });

  test('a ticket for one server is refused by another', async () => {
    const holder = placeX.servers[0]?.id as string;
    const other = cluster.fileServers.find((f) => f.id !== holder);
    assert.ok(other);
    const otherUrl = readFileSync(join(other.data, 'fileserver.addr'), 'utf8').trim();
    const res = await put(otherUrl, xId, x, placeX.ticket);
    assert.equal(res.body.error?.code, 'SEDFS_ERR_TICKET_MISMATCH');
    assert.equal(existsSync(cluster.chunkPath(indexOf(other.id), xId)), false);
  });

  test('an expired ticket, a forged one, an altered one and none at all are refused', async () => {
    const url = placeX.servers[0]?.url as string;
    const servers = cluster.fileServers.map((f) => f.id);
    const real = ticketSigner(readFileSync(join(cluster.mainData, 'ticket-key.pem'), 'utf8'));
    const expired = real.sign({ op: 'read', chunks: [xId], servers, exp: Date.now() - 1000 });
    assert.deepEqual(await get(url, xId, expired), { status: 401, code: 'SEDFS_ERR_TICKET_EXPIRED' });
    const forged = ticketSigner(generateTicketKeyPem()).sign({
      op: 'read',
      chunks: [xId],
      servers,
      exp: Date.now() + 60_000,
    });
    assert.deepEqual(await get(url, xId, forged), { status: 401, code: 'SEDFS_ERR_TICKET_INVALID' });
    // Swap in another payload under the real signature.
    const good = real.sign({ op: 'read', chunks: [yId], servers, exp: Date.now() + 60_000 });
    const otherPayload = Buffer.from(
      JSON.stringify({ v: 1, op: 'read', chunks: [xId], servers, exp: Date.now() + 60_000 }),
    ).toString('base64url');
    const altered = `${otherPayload}.${good.split('.')[1]}`;
    assert.deepEqual(await get(url, xId, altered), { status: 401, code: 'SEDFS_ERR_TICKET_INVALID' });
    assert.deepEqual(await get(url, xId), { status: 401, code: 'SEDFS_ERR_TICKET_MISSING' });
  });

  test('a body that does not hash to its id is refused and leaves no file behind', async () => {
    const z = seededBytes(3, 50_000);
    const zId = sha(z);
    const upload = await client.beginUpload(1);
    const { placements } = await client.place(upload.uploadId, [{ id: zId, size: z.length }]);
    const p = placements[0] as Placement;
    const wrong = Buffer.from(z);
    wrong[100] = (wrong[100] as number) ^ 0xff;
    const res = await put(p.servers[0]?.url as string, zId, wrong, p.ticket);
    assert.equal(res.status, 422);
    assert.equal(res.body.error?.code, 'SEDFS_ERR_HASH_MISMATCH');
    const i = indexOf(p.servers[0]?.id as string);
    assert.equal(existsSync(cluster.chunkPath(i, zId)), false);
    assert.deepEqual(readdirSync(join(cluster.fileServers[i]?.data as string, 'tmp')), []);
  });

  test('in a chain, wrong bytes are stopped at the head and at any server a client writes to directly; right ones reach every replica', async () => {
    // Large enough that a server fed by a verified upstream would not hash it itself.
    const z = seededBytes(4, 300_000);
    const zId = sha(z);
    const upload = await client.beginUpload(2);
    const { placements } = await client.place(upload.uploadId, [{ id: zId, size: z.length }]);
    const p = placements[0] as Placement;
    assert.equal(p.servers.length, 2);
    const wrong = Buffer.from(z);
    wrong[z.length - 1] = (wrong[z.length - 1] as number) ^ 0xff;
    const [head, tail] = p.servers.map((s) => indexOf(s.id));
    const tmpOf = (i: number) => readdirSync(join(cluster.fileServers[i]?.data as string, 'tmp'));

    const atHead = await put(p.servers[0]?.url as string, zId, wrong, p.ticket);
    assert.equal(atHead.body.error?.code, 'SEDFS_ERR_HASH_MISMATCH');
    // A client is not a verified upstream, whatever place in the chain it writes to.
    const atTail = await put(p.servers[1]?.url as string, zId, wrong, p.ticket);
    assert.equal(atTail.body.error?.code, 'SEDFS_ERR_HASH_MISMATCH');
    await waitFor(
      'both servers to clear their unfinished writes',
      () => tmpOf(head as number).length + tmpOf(tail as number).length === 0,
      5000,
    );
    for (const i of [head, tail]) assert.equal(existsSync(cluster.chunkPath(i as number, zId)), false);

    const ok = await put(p.servers[0]?.url as string, zId, z, p.ticket);
    assert.equal((ok.body as { receipts?: unknown[] }).receipts?.length, 2);
    for (const i of [head, tail]) {
      assert.ok(readFileSync(cluster.chunkPath(i as number, zId)).equals(z), `replica on server ${i}`);
    }
  });
});
