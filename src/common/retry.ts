import { setTimeout as sleep } from 'node:timers/promises';
import { SedfsError } from '../protocol/errors.js';

export interface RetryOptions {
  /** errors no retry can fix: thrown at once */
  isFinal: (err: unknown) => boolean;
  /** told of every failure that will be retried */
  onRetry: (err: unknown) => void;
  signal?: AbortSignal | undefined;
  /** tries in all before the last error is thrown (default: no end) */
  attempts?: number;
  /** the least wait, in ms, that a failure itself asks for (a server's Retry-After) */
  waitAtLeast?: (err: unknown) => number;
  /** in [0, 1): spreads the waits (tests pass a fixed one) */
  random?: () => number;
}

/**
 * Runs `fn` until it succeeds, waiting about 0.25 s, 0.5 s, … up to 5 s between tries (a
 * main server that is not up yet), each wait drawn between 3/4 and 5/4 of that so that
 * clients refused together do not all come back together, and never shorter than the
 * failure asked for. A final error, an abort, or the last of `attempts` tries throws the
 * last error.
 */
export async function retryWithBackoff<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
  const random = opts.random ?? Math.random;
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (opts.isFinal(err) || opts.signal?.aborted || attempt === opts.attempts) throw err;
      opts.onRetry(err);
      const wait = Math.max(delay * (0.75 + random() / 2), opts.waitAtLeast?.(err) ?? 0);
      await sleep(wait, undefined, { signal: opts.signal }).catch(() => undefined);
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

/**
 * Sends a request again, with backoff, while main refuses it with `code`, which it says
 * before doing anything, so the same request can be sent again. Each wait is at least
 * what main's Retry-After said (at most a minute of it): sooner, the same request would
 * only be refused again. Any other error is thrown at once; after the last try, one that
 * says what the waits came to (`gaveUp`, given the seconds), not "try again shortly".
 */
async function retryWhileRefused<T>(
  code: 'SEDFS_ERR_BUSY' | 'SEDFS_ERR_KEYS_INSTALLING',
  fn: () => Promise<T>,
  attempts: number,
  random: () => number,
  gaveUp: (seconds: number) => string,
): Promise<T> {
  const refused = (err: unknown) => err instanceof SedfsError && err.code === code;
  const began = Date.now();
  try {
    return await retryWithBackoff(fn, {
      isFinal: (err) => !refused(err),
      onRetry: () => undefined,
      attempts,
      waitAtLeast: (err) => Math.min(60, Number((err as SedfsError).details?.retryAfterS) || 0) * 1000,
      random,
    });
  } catch (err) {
    if (!refused(err)) throw err;
    throw new SedfsError(code, gaveUp(Math.round((Date.now() - began) / 1000)), undefined, { cause: err });
  }
}

/** Tries of a big request main refuses as busy: 60–100 s of waits in all (~80 s unspread). */
const BUSY_ATTEMPTS = 20;

/**
 * Sends a big request (a commit, a key rotation's part) again while main refuses it with
 * SEDFS_ERR_BUSY: it reads only so many big bodies at once, and refuses one before
 * reading any of it.
 */
export function retryWhileBusy<T>(
  fn: () => Promise<T>,
  attempts = BUSY_ATTEMPTS,
  random: () => number = Math.random,
): Promise<T> {
  return retryWhileRefused(
    'SEDFS_ERR_BUSY',
    fn,
    attempts,
    random,
    (s) =>
      `main was reading as many big request bodies as it may at once for ${s} s (${attempts} tries) and never took this one: run the command again later (what was stored for it and not committed is collected)`,
  );
}

/** Tries of a request main refuses while it installs new keys there: ~2 minutes of waits. */
const INSTALLING_ATTEMPTS = 30;

/**
 * Sends a request to main again while main refuses it with SEDFS_ERR_KEYS_INSTALLING:
 * it is installing an unshare's new keys under the node, a step at a time.
 */
export function retryWhileInstalling<T>(
  fn: () => Promise<T>,
  attempts = INSTALLING_ATTEMPTS,
  random: () => number = Math.random,
): Promise<T> {
  return retryWhileRefused(
    'SEDFS_ERR_KEYS_INSTALLING',
    fn,
    attempts,
    random,
    (s) => `main was still installing new keys here after an unshare ${s} s later: try again later`,
  );
}
