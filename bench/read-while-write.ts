/**
 * What one disk does when a download reads chunk files and writes the restored file at
 * the same time: whole files read with O_DIRECT in 4 MiB blocks, up to 4 at once, while
 * as many bytes are written to a new file with O_DIRECT, one 4 MiB write at a time. (A
 * get fetches 8 chunks at once; 8 readers here measured the same as 4, 680-761 against
 * 693-813 MiB/s interleaved on one cluster's chunks.) The W2 limit of issue 7 ("reading the chunks
 * while writing the restored file shares one virtual disk").
 *
 * Which files are read matters on a VM: a file written moments before read at 1,000+
 * MiB/s each way here (the host still held it), chunk files written minutes before at
 * 515-690. So the bench measures the limit on a file it has just written (as its own
 * W2 reads chunks just written), and the peer plugin on the chunk files a get reads,
 * caches dropped as for the get:
 *
 *   node dist/bench/read-while-write.js OUT_FILE MIB FOLDER_OR_FILE...
 *
 * reads files until MIB are read: with several folders (one per file server, each
 * holding the same chunks), the k-th file from folder k mod n, as a get's manifest
 * spreads its chunks over their servers. Prints {"mibs": each way, "seconds", "mib"}.
 */
import { randomFillSync } from 'node:crypto';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DirectIo } from '../src/common/direct-io.js';

const BLOCK = 4 * 1024 * 1024;
const READERS = 4;

interface Source {
  path: string;
  size: number;
}

/**
 * Reads `sources` whole (at once, READERS at a time) while writing as many bytes to
 * `out` (created, removed after); MiB/s each way, or undefined where O_DIRECT is refused.
 */
export async function readWhileWriting(
  sources: Source[],
  out: string,
): Promise<{ mibs: number; seconds: number } | undefined> {
  const io = DirectIo.open(dirname(out));
  const newFile = DirectIo.newFileFlags;
  if (!io || newFile === undefined) return undefined;
  try {
    const total = sources.reduce((n, s) => n + s.size, 0);
    const block = io.alignedBuffer(BLOCK);
    randomFillSync(block);
    const w = await open(out, newFile, 0o600);
    try {
      let next = 0;
      const t = process.hrtime.bigint();
      // Each file read as a file server sends a chunk: whole aligned blocks from its
      // start, the last one short, no read past its end.
      const readers = Array.from({ length: Math.min(READERS, sources.length) }, async () => {
        const into = io.alignedBuffer(BLOCK);
        while (next < sources.length) {
          const src = sources[next++] as Source;
          const r = await open(src.path, io.readFlags);
          try {
            for (let pos = 0; pos < src.size; ) {
              const { bytesRead } = await r.read(into, 0, BLOCK, pos);
              if (bytesRead === 0) throw new Error(`${src.path} ended early`);
              pos += bytesRead;
            }
          } finally {
            await r.close();
          }
        }
      });
      await Promise.all([
        ...readers,
        (async () => {
          for (let o = 0; o < total; o += BLOCK) await w.write(block, 0, BLOCK, o);
        })(),
      ]);
      const seconds = Number(process.hrtime.bigint() - t) / 1e9;
      return { mibs: total / 2 ** 20 / seconds, seconds };
    } finally {
      await w.close();
      rmSync(out, { force: true });
    }
  } finally {
    io.close();
  }
}

/** Regular files under `path` (itself if it is one), sorted by name. */
function filesUnder(path: string): Source[] {
  const paths = statSync(path).isFile()
    ? [path]
    : readdirSync(path, { withFileTypes: true, recursive: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name))
        .sort();
  return paths.map((p) => ({ path: p, size: statSync(p).size }));
}

/** The k-th file from folder k mod n, until `bytes` are chosen (or every file is). */
export function spreadOver(folders: Source[][], bytes: number): Source[] {
  const chosen: Source[] = [];
  let sum = 0;
  const longest = Math.max(...folders.map((f) => f.length));
  for (let k = 0; k < longest && sum < bytes; k++) {
    const file = (folders[k % folders.length] as Source[])[k];
    if (!file) continue;
    chosen.push(file);
    sum += file.size;
  }
  return chosen;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [out, mib, ...paths] = process.argv.slice(2);
  const bytes = Number(mib) * 2 ** 20;
  if (!out || !(bytes > 0) || paths.length === 0) {
    process.stderr.write('usage: read-while-write.js OUT_FILE MIB FOLDER_OR_FILE...\n');
    process.exit(2);
  }
  const sources = spreadOver(paths.map(filesUnder), bytes);
  const got = sources.reduce((n, s) => n + s.size, 0);
  if (got < bytes) {
    process.stderr.write(`read-while-write: only ${got} bytes to read, ${bytes} asked for\n`);
    process.exit(1);
  }
  const r = await readWhileWriting(sources, out);
  if (!r) {
    process.stderr.write('read-while-write: O_DIRECT is refused here\n');
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ mibs: r.mibs, seconds: r.seconds, mib: got / 2 ** 20 })}\n`);
}
