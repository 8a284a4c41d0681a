import { setTimeout as sleep } from 'node:timers/promises';
import { SedfsError } from '../protocol/errors.js';

export interface RetryOptions {
  /** errors no retry can fix: thrown at once */
  isFinal: (err: unknown) => boolean;
  /** told of every failure that will be retried */
  onRetry: (err: unknown) => void;
  signal?: AbortSignal | undefined;
}

/**
 * Runs `fn` until it succeeds, waiting 0.25 s, 0.5 s, … up to 5 s between tries (a main
 * server that is not up yet). A final error, or an abort, throws the last error.
 */
export async function retryWithBackoff<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
  let delay = 250;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (opts.isFinal(err) || opts.signal?.aborted) throw err;
      opts.onRetry(err);
      await sleep(delay, undefined, { signal: opts.signal }).catch(() => undefined);
      delay = Math.min(delay * 2, 5000);
    }
  }
}

/**
 * Runs `fn` again, up to `attempts` times in all, while main refuses it with
 * SEDFS_ERR_VERSION_CONFLICT: what it read changed before it wrote (an append that
 * met another, an unshare that met a write). Each try must read afresh. A short random
 * wait, longer each time, keeps writers that collided from colliding again.
 */
export async function retryOnConflict<T>(attempts: number, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= attempts || !(err instanceof SedfsError) || err.code !== 'SEDFS_ERR_VERSION_CONFLICT')
        throw err;
      await sleep(Math.random() * 50 * attempt);
    }
  }
}
