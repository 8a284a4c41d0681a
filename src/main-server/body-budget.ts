import { atMostOnceAMinute, type Logger } from '../common/logger.js';
import { SedfsError } from '../protocol/errors.js';

/**
 * How many bytes of big request bodies (commits, key rotations: up to 64 MiB each) main
 * reads at once. Each is checked for its sender before a byte is read, but one user, or
 * many, could still send dozens at once, and main holds every one whole until it is parsed:
 * its memory would grow without bound. So a body is read only if the bytes its
 * `content-length` declares fit in what is left of the budget, and in its sender's share
 * (half the budget, so no one user can take it all); otherwise it is refused before it is
 * read (503 `SEDFS_ERR_BUSY`, retryable), and its bytes are given back when the request
 * ends, however it ends; one that does not arrive by its deadline is cut off.
 */
export class BodyBudget {
  private inFlight = 0;
  private readonly byUser = new Map<string, number>();
  private readonly refusals: { note(latest: { user: string; bytes: number }): void };
  private readonly cutOffs: { note(latest: { user: string; bytes: number }): void };

  constructor(
    /** bytes of bodies read at once, across all users */
    readonly total: number,
    log: Logger,
    now: () => number = Date.now,
    /**
     * How long a body may take to arrive: `minMs`, plus its bytes at `bytesPerSecond`
     * (a minute and 256 KiB/s: 64 MiB in ~5 minutes).
     */
    private readonly arrival = { minMs: 60_000, bytesPerSecond: 256 * 1024 },
  ) {
    // Refusals can come in floods (that is when they happen): said at most once a minute.
    this.refusals = atMostOnceAMinute(
      (refused, latest) =>
        log.warn(
          { refused, user: latest.user, bytes: latest.bytes, inFlight: this.inFlight, budget: this.total },
          'big request bodies refused for now (SEDFS_ERR_BUSY): main reads no more of them at once (said at most once a minute, with the number refused)',
        ),
      now,
    );
    this.cutOffs = atMostOnceAMinute(
      (cut, latest) =>
        log.warn(
          { cut, user: latest.user, bytes: latest.bytes },
          'big request bodies cut off: they did not arrive in time, and held their share of the budget (said at most once a minute, with the number cut)',
        ),
      now,
    );
  }

  /**
   * When a body of `bytes` must have arrived, in ms from its headers: one that stops coming
   * would otherwise hold its bytes of the budget for as long as its connection stays open
   * (main sets no request timeout), a sender gone quiet (a laptop put to sleep) for days.
   */
  deadlineMs(bytes: number): number {
    return this.arrival.minMs + (bytes / this.arrival.bytesPerSecond) * 1000;
  }

  /** A body was cut off at its deadline (logged at most once a minute). */
  noteCutOff(user: string, bytes: number): void {
    this.cutOffs.note({ user, bytes });
  }

  /** What one user may have in flight. */
  get perUser(): number {
    return Math.floor(this.total / 2);
  }

  /** Bytes of bodies being read now, for tests and logs. */
  get used(): number {
    return this.inFlight;
  }

  /**
   * Takes `bytes` for a body `user` sends, or throws `SEDFS_ERR_BUSY`. Returns the release,
   * which gives them back (once, however often it is called). A body bigger than a user's
   * share (a budget set below the biggest body limit) is still read when nothing else is,
   * so that every body a route accepts can get through in the end.
   */
  take(user: string, bytes: number): () => void {
    const mine = this.byUser.get(user) ?? 0;
    const fits = this.inFlight + bytes <= this.total && mine + bytes <= this.perUser;
    if (!fits && this.inFlight > 0) {
      this.refusals.note({ user, bytes });
      throw new SedfsError(
        'SEDFS_ERR_BUSY',
        `main is reading as many big request bodies as it may at once (${mib(this.inFlight)} of ${mib(this.total)} MiB, ${mib(mine)} MiB of them yours): try again shortly`,
      );
    }
    this.inFlight += bytes;
    this.byUser.set(user, mine + bytes);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight -= bytes;
      const left = (this.byUser.get(user) ?? 0) - bytes;
      if (left > 0) this.byUser.set(user, left);
      else this.byUser.delete(user);
    };
  }
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}
