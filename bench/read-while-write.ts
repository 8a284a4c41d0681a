/**
 * What one disk does when a download reads chunk files and writes the restored file at
 * the same time: files read with O_DIRECT in 4 MiB blocks, up to 4 at once (as a get
 * fetches 4 chunks at once), while as many bytes are written to a new file with O_DIRECT,
 * one 4 MiB write at a time. The W2 limit of the issue
 * ("reading the chunks while writing the restored file shares one virtual disk").
 *
 * Which files are read matters on a VM: a file written moments ago read at 1,000+ MiB/s
 * each way here (the host still held it), chunk files written minutes earlier at 520-600.
 * So the bench measures the limit on its own fresh file (as its own W2 reads chunks just
 * written), and the peer plugin on the very chunk files the get has just read, caches
 * dropped as for the get:
 *
 *   node dist/bench/read-while-write.js OUT_FILE MIB FILE_OR_FOLDER...
 *
 * prints {"mibs": each way, "seconds", "mib"}.
 */
import { randomFillSync } from 'node:crypto';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DirectIo } from '../src/common/direct-io.js';

const BLOCK = 4 * 1024 * 1024;
const READERS = 4;

/**
 * Reads `bytes` from `sources` (in order, each from its start) while writing as many to
 * `out` (created, removed after); MiB/s each way, or undefined where O_DIRECT is refused.
 */
export async function readWhileWriting(
  sources: string[],
  out: string,
  bytes: number,
): Promise<{ mibs: number; seconds: number } | undefined> {
  const io = DirectIo.open(dirname(out));
  const newFile = DirectIo.newFileFlags;
  if (!io || newFile === undefined) return undefined;
  const block = io.alignedBuffer(BLOCK);
  randomFillSync(block);
  const w = await open(out, newFile, 0o600);
  try {
    const t = process.hrtime.bigint();
    let read = 0;
    let next = 0;
    // As many readers as a get has chunks in flight, each a file at a time.
    const readers = Array.from({ length: Math.min(READERS, sources.length) }, async () => {
      const into = io.alignedBuffer(BLOCK);
      while (read < bytes && next < sources.length) {
        const r = await open(sources[next++] as string, io.readFlags);
        try {
          for (let pos = 0; read < bytes; ) {
            const { bytesRead } = await r.read(into, 0, BLOCK, pos);
            if (bytesRead === 0) break;
            pos += bytesRead;
            read += bytesRead;
          }
        } finally {
          await r.close();
        }
      }
    });
    await Promise.all([
      ...readers,
      (async () => {
        for (let o = 0; o < bytes; o += BLOCK) await w.write(block, 0, BLOCK, o);
      })(),
    ]);
    if (read < bytes) throw new Error(`only ${read} bytes to read in ${sources.length} files`);
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    return { mibs: bytes / 2 ** 20 / seconds, seconds };
  } finally {
    await w.close();
    io.close();
    rmSync(out, { force: true });
  }
}

/** Regular files under `path` (itself if it is one), sorted. */
function filesUnder(path: string): string[] {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [out, mib, ...paths] = process.argv.slice(2);
  if (!out || !mib || paths.length === 0) {
    process.stderr.write('usage: read-while-write.js OUT_FILE MIB FILE_OR_FOLDER...\n');
    process.exit(2);
  }
  const bytes = Number(mib) * 2 ** 20;
  const r = await readWhileWriting(paths.flatMap(filesUnder), out, bytes);
  if (!r) {
    process.stderr.write('read-while-write: O_DIRECT is refused here\n');
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ mibs: r.mibs, seconds: r.seconds, mib: Number(mib) })}\n`);
}
