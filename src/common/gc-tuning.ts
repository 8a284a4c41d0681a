import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Chunk traffic allocates a chunk's worth of short-lived buffers (TLS records, cipher
 * output slices) and little else, so V8 would collect them only after tens of megabytes;
 * by then malloc has given the memory back to the system and the next chunk faults in
 * fresh pages, which are slow on the VMs we measured (1.5–2.9 s per GiB). A loop that
 * moves bulk bytes reports them here, and every 4 MiB the young generation is collected
 * at once, so the same memory is reused: sealing on the worker thread went from ~300,000
 * to ~58,000 page faults per GiB put, and a 1 GiB get's client peaked at 129–138 MiB
 * instead of ~150. Without `--expose-gc` on the command line this is the way to ask for
 * a collection: set the flag, and a new context has `gc`.
 */
let collect: ((options: { type: 'minor' }) => void) | undefined;
const COLLECT_EVERY_BYTES = 4 * 1024 * 1024;
let bytesSinceCollection = 0;

/** Notes `bytes` of bulk data handled; collects the young generation every 4 MiB. */
export function noteBulkBytes(bytes: number): void {
  bytesSinceCollection += bytes;
  if (bytesSinceCollection < COLLECT_EVERY_BYTES) return;
  bytesSinceCollection = 0;
  if (!collect) {
    // Made on first use: a new context costs a few milliseconds, which `sedfs ls` need not pay.
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as typeof collect;
  }
  collect?.({ type: 'minor' });
}

/** What main holds its young generation at (see below). */
const SERVER_SEMI_SPACE_MIB = 4;

/**
 * What file servers hold theirs at. Everything a file server receives arrives in new
 * buffers (one per TLS record) that only a collection frees, and counting them per
 * collection showed the dead ones piling up to ~35-40 MiB between two collections of a
 * 4 MiB young generation (63 per 1 GiB put) and setting each server's peak: 1 MiB
 * collects twice as often (~112 per put) and interleaved 1 GiB puts at R=3 peaked at
 * 428-437 MiB over main and three file servers against 471-477, with the same CPU
 * (2.6-2.7 s per server) and speed. Held from start (see bin/sedfs.js), or the code's
 * loading has already doubled it.
 */
const FILE_SERVER_SEMI_SPACE_MIB = 1;

/**
 * Holds V8's young generation at `semiSpaceMiB` per semi-space in a long-running server.
 * Left alone it grows to 16 MiB per semi-space (32 MiB resident) within a second of
 * starting, although servers keep little alive between requests; capped at 4 MiB, main
 * and each file server peaked 20–25 MiB lower in a 1 GiB put at no cost in speed (file
 * servers now hold 1 MiB: see FILE_SERVER_SEMI_SPACE_MIB). V8 reads its cap
 * (`--max-semi-space-size`) only at start, which a command cannot set for itself, but it
 * reads its growth factor at every growth: so the factor is kept at 2 below the target
 * and 1 at it, checked after every collection (V8 also shrinks the young generation when
 * a process is quiet, and may grow it a little even at factor 1: this steers, it does
 * not cap). `bin/sedfs.js` sets factor 1 before a server's code loads, so it starts at
 * V8's initial 1 MiB and grows only as asked.
 */
export function holdYoungGeneration(semiSpaceMiB = SERVER_SEMI_SPACE_MIB): void {
  // new_space's size counts both semi-spaces.
  const target = 2 * semiSpaceMiB * 1024 * 1024;
  let factor = 0;
  const steer = () => {
    const now = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? target;
    // Doubling, one step per collection, so a late check overshoots by one step at most.
    const wanted = now < target ? 2 : 1;
    if (wanted === factor) return;
    factor = wanted;
    setFlagsFromString(`--semi-space-growth-factor=${factor}`);
  };
  steer();
  new PerformanceObserver(steer).observe({ entryTypes: ['gc'] });
}

/** How much V8 may grow the old generation between full collections when it must not pick for itself (4×). */
const FREE_GROWTH = '--heap-growing-percent=300';

/**
 * The growth to return to after the last download: what the process was started with
 * (`node --heap-growing-percent=N`; 0 is V8's own choice), or a file server's own.
 */
let baseGrowth = `--heap-growing-percent=${
  process.execArgv
    .filter((a) => /^--heap[-_]growing[-_]percent=\d+$/.test(a))
    .at(-1)
    ?.split('=')[1] ?? '0'
}`;

/** Downloads running now; while any does, the old generation may grow freely (see below). */
let downloads = 0;

/**
 * How file servers run their heap: the young generation held (see above) and the old
 * generation free to grow 4× between full collections, as downloads do (see below), for
 * the same reason. In about half of the 1 GiB puts at R=3 one file server or two ran
 * 52-83 full collections instead of 1 (and ~4.5 s of CPU instead of ~2.6, the put up to
 * ~25 % slower): V8 had set its next limit inside the churn of chunk buffers. With the
 * growth held at 4×, seven puts in a row had one full collection on every server and the
 * servers' peak memory did not move (a server's heap stays ~25 MiB). Main moves no bulk
 * bytes and ran 1-3 full collections per put; let grow freely, it peaked at 210-215 MiB
 * comparing a 1,000,000-chunk inventory against 186-214 without, so it does not.
 */
export function tuneFileServerHeap(): void {
  holdYoungGeneration(FILE_SERVER_SEMI_SPACE_MIB);
  baseGrowth = FREE_GROWTH;
  setFlagsFromString(FREE_GROWTH);
}

/**
 * Lets V8's old generation grow by up to 4× between full collections while a download
 * runs; returns the function that ends it. A download keeps ~40 MiB of pooled chunk
 * buffers and passes twice the file's size through short-lived outside memory (TLS
 * records, cipher output), and V8 weighs that memory with a client's small heap (~10 MiB)
 * when it sets the limit for the next full collection. It sets it from how fast its last
 * collections ran, and in about half of the 1 GiB gets measured it picked a limit inside
 * that churn and then ran a full collection every ~30 ms (18–67 per get instead of 1–4):
 * ~0.5 s more CPU and ~20 % slower. 4 is the largest factor V8 picks by itself; it reads
 * the flag at every collection, so setting it at run time works, and it goes back to
 * `baseGrowth` when the last download ends (a long `sedfs shell` keeps its heap small).
 */
export function growHeapFreelyDuringDownload(): () => void {
  if (downloads++ === 0) setFlagsFromString(FREE_GROWTH);
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    if (--downloads === 0) setFlagsFromString(baseGrowth);
  };
}
