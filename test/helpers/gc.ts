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
  const timer = setInterval(collect, ms);
  return () => clearInterval(timer);
}
