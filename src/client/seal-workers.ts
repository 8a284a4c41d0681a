import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type ChunkSealer, sealChunk } from '../crypto/content.js';
import { sha256Hex } from '../crypto/hash.js';
import type { SealAnswer, SealJob } from './seal-worker.js';

/**
 * Chunk sealing and hashing on worker threads. An upload's one thread otherwise seals,
 * hashes, sends over TLS and reads the source by itself, and sealing and hashing were
 * half of its time: with them on a worker, a 1 GiB put went from ~240 to ~285-300 MiB/s
 * at R=1 and ~140 to ~150-165 at R=3 on two cores. (Opening chunks on a download here
 * was measured too, and lost: the download's thread is not the bottleneck the same way.) Chunks
 * live in shared memory (ChunkPool with `shared`), so a job moves no bytes, only their
 * place; a buffer that is not shared, or a file of one chunk, is sealed on the calling
 * thread. Workers start on first use and hold the process open only while they have work.
 */
export class SealWorkers {
  private readonly workers: { worker: Worker; busy: number }[] = [];
  private readonly waiting = new Map<number, { worker: Worker; done: (a: SealAnswer) => void }>();
  private nextJob = 0;

  /**
   * One worker on two cores: the calling thread and it keep both busy, and a second
   * measured no faster and cost ~40 MiB more.
   */
  constructor(private readonly count = Math.min(2, Math.max(1, availableParallelism() - 1))) {}

  /**
   * Seals chunk `index` into `into` (which may be `plain`'s own memory, with room for
   * the tag: sealing works in place) and hashes it for its id; the result is `into`'s start.
   */
  async seal(
    sealer: ChunkSealer,
    index: number,
    last: boolean,
    plain: Buffer,
    into: Buffer,
  ): Promise<{ bytes: Buffer; id: string }> {
    sealer.claim(index);
    // A file of one chunk (most small files) is sealed here: no worker is started for it.
    const here = index === 0 && last;
    if (here || !(plain.buffer instanceof SharedArrayBuffer) || !(into.buffer instanceof SharedArrayBuffer)) {
      const bytes = sealChunk(sealer.key, sealer.versionId, index, last, plain, into);
      return { bytes, id: sha256Hex(bytes) };
    }
    const job: SealJob = {
      job: this.nextJob++,
      key: sealer.key,
      versionId: sealer.versionId,
      index,
      last,
      input: plain.buffer,
      inputOffset: plain.byteOffset,
      inputLength: plain.length,
      output: into.buffer,
      outputOffset: into.byteOffset,
    };
    const answer = await this.run(job);
    if ('error' in answer) throw new Error(`sealing chunk ${index} failed: ${answer.error}`);
    return { bytes: into.subarray(0, answer.length), id: answer.id };
  }

  private run(job: SealJob): Promise<SealAnswer> {
    const w = this.leastBusy();
    if (w.busy++ === 0) w.worker.ref();
    return new Promise((resolve) => {
      this.waiting.set(job.job, {
        worker: w.worker,
        done: (a) => {
          if (--w.busy === 0) w.worker.unref();
          resolve(a);
        },
      });
      w.worker.postMessage(job);
    });
  }

  private leastBusy(): { worker: Worker; busy: number } {
    if (this.workers.length < this.count) {
      const worker = new Worker(new URL('./seal-worker.js', import.meta.url));
      worker.unref();
      worker.on('message', (a: SealAnswer) => {
        const waiter = this.waiting.get(a.job);
        this.waiting.delete(a.job);
        waiter?.done(a);
      });
      worker.on('error', (err) => {
        // A worker that dies fails what it was doing; the next job starts a new one.
        for (const [job, waiter] of this.waiting) {
          if (waiter.worker !== worker) continue;
          this.waiting.delete(job);
          waiter.done({ job, error: `seal worker failed: ${err.message}` });
        }
        const at = this.workers.findIndex((w) => w.worker === worker);
        if (at >= 0) this.workers.splice(at, 1);
      });
      const entry = { worker, busy: 0 };
      this.workers.push(entry);
      return entry;
    }
    return this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
  }
}

let shared: SealWorkers | undefined;

/** The process's seal workers, made on first use. */
export function sealWorkers(): SealWorkers {
  shared ??= new SealWorkers();
  return shared;
}
