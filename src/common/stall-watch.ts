import { SedfsError } from '../protocol/errors.js';
import { type Dispatcher, request } from './undici.js';

/**
 * A chunk's bytes that stop moving this long mean the server at the other end hangs (a
 * stopped process, a machine that froze, a cut link): its transfer has failed and the
 * next copy is tried, or one is made elsewhere. undici gives a new connection as long.
 * Over a link that is merely slow bytes keep moving; a server merely busy takes a chunk's
 * piece or sends its first bytes in far less. The 60 s of undici's header and body
 * timeouts, which a hung server met before, cost a put over it 71 s for 64 MiB and a get
 * 120 s (one wait per group of chunks in flight).
 */
export const STALL_MS = 10_000;

/**
 * Fails a chunk upload to `origin` whose server hangs, with SEDFS_ERR_UNREACHABLE on
 * `signal`. While the body is sent, its bytes must keep moving: STALL_MS from `moved()`
 * without another (or a `stop()`) fails it. Once it is all sent, the answer may rightly
 * take longer (the server makes the chunk durable, and waits for the servers after it in
 * the chain, each of which watches the next the same way): every STALL_MS without it,
 * the server's health is asked, and it fails only if that goes unanswered too. So a
 * chain that is waiting on a hung server further down is never taken for the hung one.
 * Its timers never hold the process open.
 */
export class StallWatch {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  /** bumped by every change of phase, so a health check answering late changes nothing */
  private phase = 0;

  constructor(
    private readonly origin: string,
    /** asks the server whether it runs; rejects if it does not answer */
    private readonly alive: () => Promise<void>,
    private readonly ms = STALL_MS,
  ) {}

  /** aborted when the server is found hung */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Bytes moved (or are now waiting to): the wait starts again. */
  moved(): void {
    this.stop();
    this.timer = setTimeout(() => this.fail(`took no data for ${this.ms / 1000} s`), this.ms);
    this.timer.unref();
  }

  /** Bytes wait to move: the wait starts, unless it runs already. */
  waiting(): void {
    if (this.timer === undefined) this.moved();
  }

  /** The body is all sent: from now on the server is asked whether it runs, every STALL_MS without an answer. */
  awaitingAnswer(): void {
    this.stop();
    const phase = this.phase;
    this.timer = setTimeout(() => {
      this.alive().then(
        () => {
          if (phase === this.phase) this.awaitingAnswer();
        },
        () => {
          if (phase === this.phase)
            this.fail(`has not answered for ${this.ms / 1000} s, nor to a health check`);
        },
      );
    }, this.ms);
    this.timer.unref();
  }

  /** Nothing to watch (the answer came, or the body's next bytes have not): no wait. */
  stop(): void {
    this.phase += 1;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Fails the transfer now: `why` of the server at `origin`, or `reason` as it is. */
  fail(why: string | Error): void {
    this.stop();
    this.controller.abort(
      typeof why === 'string'
        ? new SedfsError('SEDFS_ERR_UNREACHABLE', `${this.origin} ${why}`, { url: this.origin })
        : why,
    );
  }

  /** The error the transfer failed with, if this watch failed it. */
  get failure(): SedfsError | undefined {
    const reason: unknown = this.controller.signal.reason;
    return this.controller.signal.aborted && reason instanceof SedfsError ? reason : undefined;
  }

  /**
   * `pieces` as a request body: undici asks for the next piece only once the last was
   * taken by the connection (it waits for 'drain' in between), so the wait runs from each
   * piece handed over to the next ask; after the last, the answer is awaited.
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
}

/** A StallWatch for an upload to `url`, whose health is asked on `dispatcher` (`expectedIds` as for the upload). */
export function uploadWatch(
  dispatcher: Dispatcher,
  url: string,
  expectedIds?: readonly string[],
): StallWatch {
  const origin = new URL(url).origin;
  return new StallWatch(origin, async () => {
    const res = await request(`${origin}/v1/health`, {
      dispatcher,
      ...(expectedIds ? { expectedIds } : {}),
      method: 'GET',
      headersTimeout: STALL_MS,
      bodyTimeout: STALL_MS,
    });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`health answered ${res.statusCode}`);
  });
}
