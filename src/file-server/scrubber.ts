import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../common/logger.js';
import type { ChunkStore } from './chunk-store.js';

export interface ScrubOptions {
  /** seconds from the start of one full pass to the next; 0 turns scrubbing off */
  intervalSeconds: number;
  /** MiB/s read while scrubbing; 0 = as fast as the disk goes */
  rateMiBs: number;
}

/**
 * Re-hashes every stored chunk at a bounded rate, a full pass per interval. A chunk
 * that no longer matches its id is quarantined by the store and reported to main,
 * which repairs it from a good replica.
 */
export class Scrubber {
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(
    private readonly store: ChunkStore,
    private readonly report: (chunkIds: string[]) => Promise<void>,
    private readonly log: Logger,
    private readonly opts: ScrubOptions,
  ) {}

  start(): void {
    if (this.opts.intervalSeconds <= 0) return;
    this.loop = this.run().catch((err: Error) => {
      if (!this.stopping.signal.aborted) this.log.error({ reason: err.message }, 'scrubber stopped');
    });
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      const started = Date.now();
      try {
        const { checked, bad } = await this.pass();
        if (signal.aborted) return;
        this.log.info({ checked, bad: bad.length, ms: Date.now() - started }, 'scrub pass done');
      } catch (err) {
        // A folder that could not be listed once (EMFILE, a passing EIO) must not end
        // scrubbing for as long as the process runs: the next pass starts on time.
        if (signal.aborted) return;
        this.log.error({ reason: (err as Error).message }, 'scrub pass failed: the next starts at its time');
      }
      const wait = this.opts.intervalSeconds * 1000 - (Date.now() - started);
      if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
    }
  }

  /**
   * One full pass over the store; returns how many chunks were checked and which were
   * bad. `unpaced` ignores the rate limit (an operator's `check --verify` waits on it).
   */
  async pass(unpaced = false): Promise<{ checked: number; bad: string[] }> {
    const bytesPerMs = unpaced ? 0 : (this.opts.rateMiBs * 1024 * 1024) / 1000;
    const pace = async (n: number) => {
      if (bytesPerMs > 0)
        await sleep(n / bytesPerMs, undefined, { signal: this.stopping.signal }).catch(() => undefined);
    };
    let checked = 0;
    const bad: string[] = [];
    for await (const id of this.store.inventory()) {
      if (this.stopping.signal.aborted) break;
      const ok = await this.store.verify(id, pace).catch((err: Error & { code?: string }) => {
        // Deleted since it was listed: nothing to check.
        if (err.code === 'SEDFS_ERR_CHUNK_NOT_FOUND') return true;
        // A chunk that cannot be read (EIO from a bad sector) is as lost here as a corrupt
        // one: main is told, so that it stops counting it and repair copies it elsewhere.
        this.log.error(
          { chunk: id, reason: err.message },
          'scrubber could not read a chunk: reported as bad',
        );
        return false;
      });
      checked++;
      if (!ok) {
        bad.push(id);
        this.log.warn({ chunk: id }, 'scrubber found a corrupt or unreadable chunk: reported to main');
        await this.report([id]).catch((err: Error) =>
          this.log.warn({ chunk: id, reason: err.message }, 'could not report a corrupt chunk to main'),
        );
      }
    }
    return { checked, bad };
  }
}
