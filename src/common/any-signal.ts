/** Where a signal made by `anySignal` keeps its sources. */
const SOURCES = Symbol('sources');

/**
 * `AbortSignal.any(signals)`, holding on to its sources for as long as it lives. On
 * Node 20 the signal `AbortSignal.any` makes holds its sources weakly, and an
 * `AbortSignal.timeout` is held by nothing else (its timer holds it weakly): the first
 * garbage collection frees the timeout, and the signal never aborts (nodejs/node#57736;
 * seen here as a health check to a hung server that never gave up, so main's order to
 * it waited for ever, and a CI run timed out two tests of just that).
 */
export function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = AbortSignal.any(signals);
  Object.defineProperty(any, SOURCES, { value: signals });
  return any;
}
