import { SedfsError } from '../protocol/errors.js';
import { STALL_MS } from '../protocol/limits.js';
import { anySignal } from './any-signal.js';
import { freshAgentLike } from './fresh-agent.js';
import { type Dispatcher, request } from './undici.js';

/** How long a health check may take (at most half the wait): a server that runs answers it at once. */
const HEALTH_MS = 5_000;

/**
 * Fails a chunk upload to `origin` whose server hangs, with SEDFS_ERR_UNREACHABLE on
 * `signal`. Every `ms` without progress (a piece of the body taken, while it is sent;
 * the answer, once it is all sent) the server's health is asked, on a connection of its
 * own; the transfer fails only if that goes unanswered too. So a server that is merely
 * slow (a busy disk, a slow link, or waiting on the servers after it in the chain, each
 * of which watches the next the same way) is waited for, and only a hung one is named.
 * Its timers never hold the process open.
 */
export class StallWatch {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  /** the health check under way, cancelled at any change of phase */
  private checking: AbortController | undefined;
  /** whether the body is all sent (what a failure says) */
  private sent = false;
  private finished = false;

  constructor(
    private readonly origin: string,
    /** asks the server whether it runs; rejects if it does not answer (or `signal` aborts) */
    private readonly alive: (signal: AbortSignal) => Promise<void>,
    private readonly ms = STALL_MS,
  ) {}

  /** aborted when the server is found hung */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Progress (a piece taken, or waiting to be): the wait starts again. */
  moved(): void {
    this.stop();
    if (this.finished) return;
    this.timer = setTimeout(() => this.check(), this.ms);
    this.timer.unref();
  }

  /** Bytes wait to move: the wait starts, unless it runs already. */
  waiting(): void {
    if (this.timer === undefined && this.checking === undefined) this.moved();
  }

  /** The body is all sent: the answer is waited for the same way. */
  awaitingAnswer(): void {
    this.sent = true;
    this.moved();
  }

  /** Nothing to wait for now (the body's next bytes have not come): no wait. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.checking?.abort();
    this.checking = undefined;
  }

  /**
   * The answer came (or the transfer failed): nothing is watched again, whatever the body
   * does after it (undici may still ask for pieces of a body answered early), so no later
   * wait can abort the reading of the answer.
   */
  finish(): void {
    this.finished = true;
    this.stop();
  }

  /** Fails the transfer now, with `reason`. */
  fail(reason: Error): void {
    this.finish();
    this.controller.abort(reason);
  }

  /** The error the transfer failed with, if this watch failed it. */
  get failure(): SedfsError | undefined {
    const reason: unknown = this.controller.signal.reason;
    return this.controller.signal.aborted && reason instanceof SedfsError ? reason : undefined;
  }

  /**
   * `pieces` as a request body: undici asks for the next piece only once the last was
   * taken by the connection (it waits for 'drain' in between), so each ask is progress;
   * after the last, the answer is awaited.
   */
  *watching(pieces: Iterable<Buffer>): Generator<Buffer> {
    let sent = false;
    try {
      for (const piece of pieces) {
        this.moved();
        yield piece;
      }
      sent = true;
    } finally {
      if (sent) this.awaitingAnswer();
      else this.stop();
    }
  }

  private check(): void {
    this.timer = undefined;
    const checking = new AbortController();
    this.checking = checking;
    const what = this.sent ? 'has not answered' : 'took no data';
    this.alive(checking.signal).then(
      () => {
        if (this.checking === checking) this.moved();
      },
      () => {
        if (this.checking === checking)
          this.fail(
            new SedfsError(
              'SEDFS_ERR_UNREACHABLE',
              `${this.origin} ${what} for ${this.ms / 1000} s, nor answered a health check`,
              { url: this.origin },
            ),
          );
      },
    );
  }
}

/** A StallWatch for an upload to `url`, whose health is asked on `dispatcher` (`expectedIds` as for the upload). */
export function uploadWatch(
  dispatcher: Dispatcher,
  url: string,
  expectedIds?: readonly string[],
  ms = STALL_MS,
): StallWatch {
  const origin = new URL(url).origin;
  return new StallWatch(
    origin,
    (signal) => unlessAborted(healthOf(dispatcher, origin, expectedIds, Math.min(HEALTH_MS, ms / 2)), signal),
    ms,
  );
}

/**
 * Health checks under way, by the agent they are made like, then the server asked (its
 * origin, the ids expected there) and the time allowed. Transfers to one server that
 * stall at once (up to 64 a client, one a connection) join one check: each made a new
 * connection and TLS handshake of its own, 64 every 10 s to a server that was only slow.
 * A transfer that moves on leaves the check to the others; a check ends within its time.
 */
const checksUnderWay = new WeakMap<Dispatcher, Map<string, Promise<void>>>();

function healthOf(
  dispatcher: Dispatcher,
  origin: string,
  expectedIds: readonly string[] | undefined,
  limitMs: number,
): Promise<void> {
  let checks = checksUnderWay.get(dispatcher);
  if (!checks) {
    checks = new Map();
    checksUnderWay.set(dispatcher, checks);
  }
  const key = `${origin} ${expectedIds ? [...expectedIds].sort().join(',') : '-'} ${limitMs}`;
  let check = checks.get(key);
  if (!check) {
    const under = checks;
    check = askHealth(dispatcher, origin, expectedIds, limitMs).finally(() => under.delete(key));
    // Those who joined it take its failure; none may be left to (all moved on).
    check.catch(() => undefined);
    checks.set(key, check);
  }
  return check;
}

async function askHealth(
  dispatcher: Dispatcher,
  origin: string,
  expectedIds: readonly string[] | undefined,
  limitMs: number,
): Promise<void> {
  // A connection of its own, not one of the pool the transfers it checks on hold.
  const fresh = freshAgentLike(dispatcher);
  try {
    const res = await request(`${origin}/v1/health`, {
      dispatcher: fresh ?? dispatcher,
      ...(expectedIds ? { expectedIds } : {}),
      method: 'GET',
      signal: AbortSignal.timeout(limitMs),
    });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`health answered ${res.statusCode}`);
  } finally {
    void fresh?.destroy().catch(() => undefined);
  }
}

/** `work`'s outcome, or a rejection once `signal` aborts, whichever comes first (`work` goes on). */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** An answer to watchedRequest: `pieces()` reads its body, a wait watched for each piece. */
export type WatchedResponse = Dispatcher.ResponseData & { pieces(): AsyncGenerator<Buffer> };

/**
 * An order whose body goes at once (a small JSON, or none) and whose answer may take
 * long (a copy made, a scrub of a whole server): the answer is watched as an upload's
 * is, so a server that hangs fails it with SEDFS_ERR_UNREACHABLE after `STALL_MS` and a
 * health check, while one that is merely busy is waited for. Without it main's orders
 * to a hung server waited out undici's 60 s, and a scrub, which may take hours and so
 * has no such limit, for ever. An answer's body read with `pieces()` is watched the
 * same way (the wait for each piece, not the time the reader takes over one): an
 * inventory, read for long, with no limit on the whole.
 */
export async function watchedRequest(
  dispatcher: Dispatcher,
  url: string,
  opts: Omit<Parameters<typeof request>[1], 'dispatcher'> & { expectedIds?: readonly string[] },
  ms = STALL_MS,
): Promise<WatchedResponse> {
  const watch = uploadWatch(dispatcher, url, opts.expectedIds, ms);
  watch.awaitingAnswer();
  const signal = opts.signal ? anySignal([opts.signal as AbortSignal, watch.signal]) : watch.signal;
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, { ...opts, dispatcher, signal } as Parameters<typeof request>[1]);
  } catch (err) {
    watch.finish();
    throw watch.failure ?? err;
  }
  watch.stop();
  return Object.assign(res, { pieces: () => watchedPieces(res.body, watch) });
}

async function* watchedPieces(body: AsyncIterable<Buffer>, watch: StallWatch): AsyncGenerator<Buffer> {
  const pieces = body[Symbol.asyncIterator]();
  let ended = false;
  try {
    for (;;) {
      watch.moved();
      let next: IteratorResult<Buffer>;
      try {
        next = await pieces.next();
      } catch (err) {
        ended = true;
        throw watch.failure ?? err;
      }
      watch.stop();
      if (next.done) {
        ended = true;
        return;
      }
      yield next.value;
    }
  } finally {
    watch.finish();
    // A reader that stops early (an inventory found bad half-way) lets go of the body,
    // as a for-await over it would: left paused, with no body timeout, it held its
    // connection for good, and a server asked again and again filled its pool.
    if (!ended) await pieces.return?.();
  }
}
