import type { Logger } from './logger.js';

/**
 * A background job that runs now and then and never overlaps itself: `kick` asks for
 * a run soon (a run asked for while one is going happens right after it), `start`
 * adds a timer, `stop` waits for the current run. Deletion and repair passes use it.
 *
 * Timer runs keep to a duty cycle: after a run that took T, the timer skips until
 * T × 19 has passed, so a pass over a million chunks (seconds of synchronous SQLite)
 * takes at most 5 % of main's time. Kicks, which mean there is work, run regardless.
 */
export class SerialTask {
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastEnded = 0;
  private lastTook = 0;

  constructor(
    private readonly body: () => Promise<void>,
    private readonly log: Logger,
    private readonly what: string,
  ) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      if (Date.now() - this.lastEnded >= this.lastTook * 19) this.kick();
    }, intervalMs);
    this.timer.unref();
  }

  private timed(): Promise<void> {
    const started = Date.now();
    return this.body().finally(() => {
      this.lastEnded = Date.now();
      this.lastTook = this.lastEnded - started;
    });
  }

  kick(): void {
    // A timer someone set before the stop (the next page of a repair) runs nothing after.
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.timed()
      .catch((err: Error) => this.log.error({ reason: err.message }, `${this.what} failed`))
      .finally(() => {
        this.running = undefined;
        this.honourKick();
      });
  }

  /** A kick that came while a run was going: one more run now. */
  private honourKick(): void {
    if (!this.again) return;
    this.again = false;
    this.kick();
  }

  /**
   * Waits for the current run, then does one more and waits for it. A kick that came
   * during it is honoured after, as after any run (it was lost before).
   */
  async runNow(): Promise<void> {
    while (this.running) await this.running;
    this.running = this.timed().finally(() => {
      this.running = undefined;
    });
    try {
      await this.running;
    } finally {
      this.honourKick();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
