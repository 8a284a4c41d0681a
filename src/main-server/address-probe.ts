import { createAgent, requestJson } from '../common/http-client.js';
import type { TlsIdentity } from '../common/tls.js';

/** How long main waits for what answers at an address while a server registers. */
const PROBE_TIMEOUT_MS = 5_000;

/** How long a probe's "no" stands for the same server at the same URL. */
export const PROBE_REFUSAL_MS = 30_000;

/**
 * Whether what answers at `url` now is file server `id`: its health answer names it and,
 * over TLS, the connection showed that id's certificate (the proof: only the holder of
 * the key bound to the id has one). Over plain HTTP the server's word is all there is,
 * as it is for everything there.
 */
export async function answersAs(tls: TlsIdentity | undefined, url: string, id: string): Promise<boolean> {
  // A pool of its own: main's expects the servers registered there, not `id`.
  const agent = createAgent(tls, { serverNames: () => [id] });
  try {
    const health = await requestJson<{ id?: unknown }>(agent, `${url}/v1/health`, {
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
    return health.id === id;
  } catch {
    return false;
  } finally {
    await agent.close();
  }
}

/**
 * `ask` asked at most once per `refusalMs` about the same server at the same URL while
 * the answer is no: a server refused at an address retries its registration every few
 * seconds, and each probe is a TLS handshake to somebody else's server. Asks at once
 * running share one probe. A yes is never reused: it hands the address over, and must
 * be about what answers there now.
 */
export function throttleProbes(
  ask: (url: string, id: string) => Promise<boolean>,
  now: () => number,
  refusalMs = PROBE_REFUSAL_MS,
): (url: string, id: string) => Promise<boolean> {
  /** when each (url, id) last got a no */
  const refused = new Map<string, number>();
  const running = new Map<string, Promise<boolean>>();
  return (url, id) => {
    const key = `${id} ${url}`;
    const at = now();
    // Expired refusals go, so the map holds only those of the last `refusalMs`.
    for (const [k, when] of refused) if (at - when >= refusalMs) refused.delete(k);
    if (refused.has(key)) return Promise.resolve(false);
    let probe = running.get(key);
    if (!probe) {
      probe = ask(url, id)
        .catch(() => false)
        .then((yes) => {
          running.delete(key);
          if (!yes) refused.set(key, now());
          return yes;
        });
      running.set(key, probe);
    }
    return probe;
  };
}
