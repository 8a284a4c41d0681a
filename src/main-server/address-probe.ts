import { createAgent, requestJson } from '../common/http-client.js';
import type { TlsIdentity } from '../common/tls.js';

/** How long main waits for what answers at an address while a server registers. */
const PROBE_TIMEOUT_MS = 5_000;

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
