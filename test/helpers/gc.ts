import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// A garbage collection on demand, without starting the test process with --expose-gc:
// the flag set now makes a new context's global `gc`.
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

/** A full garbage collection now. */
export function collectGarbage(): void {
  collect();
}

/** Collects garbage every `ms` until the returned function is called. */
export function collectGarbageEvery(ms: number): () => void {
  // Unref'd: a test that fails before it stops this does not keep its process running.
  const timer = setInterval(collect, ms).unref();
  return () => clearInterval(timer);
}
