import type { Logger } from './logger.js';

/**
 * A background job that runs now and then and never overlaps itself: `kick` asks for
 * a run soon (a run asked for while one is going happens right after it), `start`
 * adds a timer, `stop` waits for the current run. Deletion and repair passes use it.
 */
export class SerialTask {
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly body: () => Promise<void>,
    private readonly log: Logger,
    private readonly what: string,
  ) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => this.kick(), intervalMs);
    this.timer.unref();
  }

  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.body()
      .catch((err: Error) => this.log.error({ reason: err.message }, `${this.what} failed`))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Waits for the current run, then does one more and waits for it. */
  async runNow(): Promise<void> {
    while (this.running) await this.running;
    this.running = this.body().finally(() => {
      this.running = undefined;
    });
    await this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
