import { setTimeout as sleep } from 'node:timers/promises';

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
