/**
 * W7: main compares the inventory of a file server holding `n` chunks. Main's database
 * is seeded directly with `n` chunks recorded on one server (uploading a million
 * chunks would take the bench hours); the server's side is played by this process,
 * streaming the ids in ascending order as a file server does, with `n / 1000` of them missing and as many
 * unknown ones added, so the comparison has work to do.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { type Agent, request } from 'undici';
import { createAgent } from '../src/common/http-client.js';
import { TlsIdentity } from '../src/common/tls.js';
import { generateTlsKey } from '../src/crypto/certificates.js';
import { issueCertificate } from '../src/crypto/cluster-ca.js';
import type { InventoryResponse } from '../src/protocol/main-api.js';
import { TestCluster } from '../test/helpers/cluster.js';

const SERVER = 'ab'.repeat(16);
const chunkId = (i: number) => createHash('sha256').update(`chunk ${i}`).digest('hex');

function seed(dbPath: string, n: number): void {
  const db = new Database(dbPath);
  const now = Date.now();
  db.prepare(
    `INSERT INTO servers (id, url, receipt_key, total_bytes, free_bytes, used_bytes, chunk_count, registered_at, last_heartbeat)
     VALUES (?, 'http://127.0.0.1:9', 'k', 1e12, 1e12, 0, ?, ?, ?)`,
  ).run(SERVER, n, now, now);
  const chunk = db.prepare(
    'INSERT INTO chunks (id, size, wanted, refs, created_at) VALUES (?, 4096, 1, 1, ?)',
  );
  const replica = db.prepare(
    "INSERT INTO replicas (chunk_id, server_id, state, added_at) VALUES (?, ?, 'ok', ?)",
  );
  const batch = 50_000;
  for (let start = 0; start < n; start += batch) {
    db.transaction(() => {
      for (let i = start; i < Math.min(n, start + batch); i++) {
        const id = chunkId(i);
        chunk.run(id, now);
        replica.run(id, SERVER, now);
      }
    })();
  }
  db.close();
}

/** The ids a file server would list: ascending, as its sorted directory walk gives them. */
async function* inventory(from: number, to: number): AsyncGenerator<Buffer> {
  const ids = Array.from({ length: to - from }, (_, k) => chunkId(from + k)).sort();
  let lines: string[] = [];
  for (const id of ids) {
    lines.push(id);
    if (lines.length === 4096) {
      yield Buffer.from(`${lines.join('\n')}\n`);
      lines = [];
    }
  }
  if (lines.length > 0) yield Buffer.from(`${lines.join('\n')}\n`);
}

/** The seeded server's TLS identity: a certificate for its id from the cluster CA, as enrolment gives. */
async function asServer(mainData: string): Promise<Agent> {
  const ca = {
    certPem: readFileSync(join(mainData, 'tls', 'ca.pem'), 'utf8'),
    keyPem: readFileSync(join(mainData, 'tls', 'ca-key.pem'), 'utf8'),
  };
  const key = generateTlsKey();
  const certPem = await issueCertificate(ca, {
    publicKeyPem: key.publicKeyPem,
    commonName: SERVER,
    hosts: ['127.0.0.1'],
    lifetimeMs: 3600_000,
  });
  return createAgent(new TlsIdentity(ca.certPem, { certPem, keyPem: key.keyPem }));
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

export async function benchReconcile(
  n: number,
): Promise<{ seconds: number; mainPeakRssMiB: number } & InventoryResponse> {
  const cluster = await TestCluster.start({ servers: 0 });
  try {
    await cluster.stopMain();
    seed(join(cluster.mainData, 'main.db'), n);
    await cluster.startMain();
    const agent = await asServer(cluster.mainData);
    const off = Math.max(1, Math.floor(n / 1000));
    const t0 = process.hrtime.bigint();
    const res = await request(`${cluster.mainUrl}/v1/servers/${SERVER}/inventory`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${cluster.joinToken}`, 'content-type': 'application/octet-stream' },
      dispatcher: agent,
      body: Readable.from(inventory(off, n + off)),
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    const diff = (await res.body.json()) as InventoryResponse;
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await agent.close();
    if (res.statusCode !== 200 || diff.missing !== off || diff.extra !== off)
      throw new Error(`unexpected reconciliation result ${res.statusCode} ${JSON.stringify(diff)}`);
    return { seconds, mainPeakRssMiB: peakRssMiB(cluster.main.proc.pid as number), ...diff };
  } finally {
    await cluster.stop();
  }
}
