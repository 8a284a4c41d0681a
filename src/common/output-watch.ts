import type { Writable } from 'node:stream';

/** What `watchOutput` sees of a stream being written to. */
export interface OutputWatch {
  /** rejects with the stream's error, or its early close, until `stop` */
  readonly failed: Promise<never>;
  /** that error, once there is one (set at once for a stream already failed or closed) */
  readonly error: Error | undefined;
  stop(): void;
}

/**
 * Watches `out` for an error, or a close before it finished, while something writes to
 * it. A stream's 'error' that nobody listens for ends the process with a stack trace, and
 * a writer listens to its output only while it waits for 'drain'; a failed stream never
 * drains, so a writer waiting for it waits for ever. `closedEarly` says what a close
 * before the end was. A stream failed, closed or ended already fails the watch at once.
 */
export function watchOutput(out: Writable, closedEarly: string): OutputWatch {
  let error: Error | undefined;
  let stop = () => {};
  const failed = new Promise<never>((_resolve, reject) => {
    const fail = (err: Error) => {
      error ??= err;
      reject(error);
    };
    const onClose = () => {
      if (!out.writableFinished) fail(out.errored ?? new Error(closedEarly));
    };
    out.on('error', fail);
    out.on('close', onClose);
    stop = () => {
      out.off('error', fail);
      out.off('close', onClose);
    };
    // Failed, closed or ended already: it takes nothing more (a write would wait for
    // 'drain' for ever, or fail on its own).
    if (out.errored || out.destroyed || out.writableEnded) fail(out.errored ?? new Error(closedEarly));
  });
  // Awaited by whoever races it; this only keeps an early rejection from counting as unhandled.
  failed.catch(() => undefined);
  return {
    failed,
    get error() {
      return error;
    },
    stop: () => stop(),
  };
}
