import type { Readable } from 'node:stream';
import { SedfsError } from '../protocol/errors.js';

/**
 * Feeds every piece of `source` to `onPiece`, pausing the source only while a returned
 * promise is pending. Over TLS a body arrives in 16 KiB pieces (one per TLS record), four
 * times as many as over plain TCP; `for await` costs a promise and a microtask hop for
 * each of them, which on a CPU-bound chain showed up as much of TLS's overhead. Here a
 * piece that needs no waiting costs one plain function call.
 *
 * Resolves when the source ends or closes (a caller that needs the whole body checks
 * for itself that it is complete); rejects on the source's error or `onPiece`'s, and
 * at once if the source was destroyed before it ended.
 */
export function pump(source: Readable, onPiece: (piece: Buffer) => Promise<void> | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let failed = false;
    /** The piece still being handled, if any: the end is not reached before it is. */
    let waiting: Promise<void> | undefined;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      cleanup();
      source.pause();
      reject(err);
    };
    const done = () => {
      cleanup();
      if (waiting) waiting.then(() => !failed && resolve(), fail);
      else if (!failed) resolve();
    };
    const onData = (piece: Buffer) => {
      if (failed) return;
      try {
        waiting = onPiece(piece);
      } catch (err) {
        fail(err);
        return;
      }
      if (!waiting) return;
      source.pause();
      waiting.then(() => {
        waiting = undefined;
        if (!failed) source.resume();
      }, fail);
    };
    // 'error' stays listened to: an error emitted later must not become an uncaught one.
    const cleanup = () => {
      source.off('data', onData);
      source.off('end', done);
      source.off('close', done);
    };
    source.on('data', onData);
    source.once('end', done);
    source.once('close', done);
    source.on('error', fail);
    // Already over before this was called (a request whose client hung up while the
    // route awaited something): its 'end', 'close' or 'error' will not come again.
    if (source.readableEnded) done();
    else if (source.errored) fail(source.errored);
    else if (source.destroyed) fail(new SedfsError('SEDFS_ERR_BODY_INCOMPLETE'));
  });
}
