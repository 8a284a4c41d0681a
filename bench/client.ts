/**
 * The benchmark's client, run as its own process so its peak memory is its own.
 * Prints one JSON line. Usage:
 *   client.js put  MAIN TOKENFILE PATH MIB REPLICAS
 *   client.js get  MAIN TOKENFILE PATH
 *   client.js small MAIN TOKENFILE FOLDER COUNT BYTES
 *   client.js ls   MAIN TOKENFILE FOLDER
 *   client.js dirs MAIN TOKENFILE FOLDER COUNT
 *   client.js share MAIN TOKENFILE FOLDER USER
 *   client.js unshare MAIN TOKENFILE FOLDER USER
 *   client.js mixed MAIN TOKENFILE FOLDER SECONDS TAG
 */
import { createHash, randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { ClusterClient } from '../src/client/cluster-client.js';
import { FileSystem } from '../src/client/file-system.js';
import { MemoryPins } from '../src/client/pins.js';
import { Profile, type Session } from '../src/client/profile.js';
import { share, unshare } from '../src/client/sharing.js';

const [verb, main, sessionFile, path, a, b] = process.argv.slice(2);
const session = JSON.parse(readFileSync(sessionFile as string, 'utf8')) as Session;
// The bench keeps the cluster CA beside the session, as a real profile does.
const trust = await new Profile(dirname(sessionFile as string)).trustFor(main as string);
const client = new ClusterClient(main as string, trust ? { ca: trust.ca } : {});
client.token = session.token;
const fs = await FileSystem.open(client, session.identity);
const maxRssMiB = () => process.resourceUsage().maxRSS / 1024;

/** Random-looking bytes without paying for randomness per byte: one random block, stamped per piece. */
function* generated(bytes: number, hash: ReturnType<typeof createHash>): Generator<Buffer> {
  const block = randomFillSync(Buffer.allocUnsafe(4 * 1024 * 1024));
  for (let off = 0, i = 0; off < bytes; off += block.length, i++) {
    block.writeUInt32BE(i, 0);
    const piece = block.subarray(0, Math.min(block.length, bytes - off));
    hash.update(piece);
    yield piece;
  }
}

async function run(): Promise<Record<string, unknown>> {
  const t0 = process.hrtime.bigint();
  const secs = () => Number(process.hrtime.bigint() - t0) / 1e9;
  switch (verb) {
    case 'put': {
      const bytes = Number(a) * 1024 * 1024;
      const h = createHash('sha256');
      await fs.put(generated(bytes, h), path as string, { replicas: Number(b) });
      return { seconds: secs(), bytes, sha256: h.digest('hex') };
    }
    case 'get': {
      const h = createHash('sha256');
      let bytes = 0;
      await fs.get(
        path as string,
        new Writable({
          highWaterMark: 8 * 1024 * 1024,
          write(c: Buffer, _e, cb) {
            h.update(c);
            bytes += c.length;
            cb();
          },
        }),
      );
      return { seconds: secs(), bytes, sha256: h.digest('hex') };
    }
    case 'small': {
      const count = Number(a);
      const size = Number(b);
      await fs.mkdir(path as string, { parents: true });
      // A folder of small files, as `sedfs put -r` sends it: in batches (FileSystem.putMany).
      const files = Array.from({ length: count }, (_, i) => ({
        name: `f${String(i).padStart(5, '0')}`,
        data: randomFillSync(Buffer.alloc(size)),
      }));
      await fs.putMany(path as string, files);
      return { seconds: secs(), files: count };
    }
    case 'dirs': {
      const count = Number(a);
      await fs.mkdir(path as string, { parents: true });
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const i = next++;
          await fs.mkdir(`${path}/d${String(i).padStart(5, '0')}`);
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      return { seconds: secs(), entries: count };
    }
    case 'share': {
      await share(fs, new MemoryPins(), path as string, a as string, 'read');
      return { seconds: secs() };
    }
    case 'unshare': {
      const res = await unshare(fs, new MemoryPins(), path as string, a as string);
      return { seconds: secs(), nodes: res.nodes };
    }
    case 'ls': {
      const entries = await fs.list(path as string);
      return { seconds: secs(), entries: entries.length };
    }
    case 'mixed': {
      // One of W8's clients: for SECONDS, put a 64 KiB file, get one, or list the folder
      // (4 : 4 : 2), one operation at a time; every latency and error is reported.
      const until = Date.now() + Number(a) * 1000;
      const body = randomFillSync(Buffer.alloc(64 * 1024));
      const mine: string[] = [];
      const latencies: number[] = [];
      const errors: string[] = [];
      await fs.mkdir(path as string, { parents: true }).catch(() => undefined);
      for (let i = 0; Date.now() < until; i++) {
        const roll = Math.random();
        const t = process.hrtime.bigint();
        try {
          if (roll < 0.4 || mine.length === 0) {
            const name = `${path}/${b}-${i}`;
            await fs.put([body], name);
            mine.push(name);
          } else if (roll < 0.8) {
            const got: Buffer[] = [];
            await fs.get(
              mine[Math.floor(Math.random() * mine.length)] as string,
              new Writable({
                write(c: Buffer, _e, cb) {
                  got.push(c);
                  cb();
                },
              }),
            );
            if (!Buffer.concat(got).equals(body)) throw new Error('read returned other bytes');
          } else {
            await fs.list(path as string);
          }
          latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
      return { seconds: secs(), ops: latencies.length, latencies, errors };
    }
    default:
      throw new Error(`unknown verb ${verb}`);
  }
}

const result = await run();
await client.close();
const cpu = process.cpuUsage();
process.stdout.write(
  `${JSON.stringify({ ...result, maxRssMiB: maxRssMiB(), minflt: process.resourceUsage().minorPageFault, cpuSeconds: (cpu.user + cpu.system) / 1e6 })}\n`,
);
