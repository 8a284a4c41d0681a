import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { request } from 'undici';
import { errorFromResponse, unreachable } from '../common/http-client.js';
import { SedfsError } from '../protocol/errors.js';
import type { ReplicaFailure } from '../protocol/file-server-api.js';
import type { FileServerContext } from './context.js';

/** A replica the chain never reached. */
export function notAttempted(server: string, message: string): ReplicaFailure {
  return { server, code: 'SEDFS_ERR_REPLICATION_FAILED', message, attempted: false };
}

export interface Downstream<T> {
  /** A promise only when the next server is not keeping up. */
  push(piece: Buffer): Promise<void> | undefined;
  end(): void;
  abort(): void;
  result(): Promise<T | { error: SedfsError }>;
}

/**
 * Streams a body on to the next server in the chain (`target`, a PUT with `headers`).
 * A failure downstream never fails the local write: it stops forwarding and is
 * reported in the answer instead.
 */
export function forward<T>(
  ctx: FileServerContext,
  target: string,
  headers: Record<string, string>,
): Downstream<T> {
  const body = new PassThrough({ highWaterMark: 1024 * 1024 });
  let failed: SedfsError | undefined;
  const response = request(target, {
    dispatcher: ctx.agent,
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', ...headers },
    body,
  }).then(
    async (res) => {
      if (res.statusCode >= 400) throw await errorFromResponse(res, target);
      return (await res.body.json()) as T;
    },
    (err) => {
      throw err instanceof SedfsError ? err : unreachable(target, err);
    },
  );
  const settled = response.then(
    (ok) => ok,
    (err: SedfsError) => {
      failed = err;
      body.destroy();
      return { error: err };
    },
  );
  return {
    push(piece) {
      if (failed || body.destroyed || body.write(piece)) return undefined;
      return Promise.race([once(body, 'drain'), settled]).then(() => undefined);
    },
    end() {
      if (!body.destroyed) body.end();
    },
    abort() {
      body.destroy(new Error('upstream write aborted'));
    },
    result: () => settled,
  };
}
