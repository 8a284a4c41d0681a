import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { errorFromResponse, unreachable } from '../common/http-client.js';
import { peerName } from '../common/tls.js';
import { request } from '../common/undici.js';
import { SedfsError } from '../protocol/errors.js';
import type { ReplicaFailure } from '../protocol/file-server-api.js';
import type { TicketPayload } from '../protocol/ticket.js';
import type { FileServerContext } from './context.js';

/** Where this server sits in a write ticket's chain, and who it trusts upstream. */
export interface ChainPlace {
  /** the servers after this one, with their URLs from the ticket */
  rest: { server: string; url: string | undefined }[];
  /**
   * Over mutual TLS, the request comes from the server just before this one in the
   * ticket's chain, which checks every chunk before the bytes that complete it go on:
   * this server need not hash again.
   */
  verifiedUpstream: boolean;
}

export function chainPlace(ctx: FileServerContext, ticket: TicketPayload, req: IncomingMessage): ChainPlace {
  const me = ticket.servers.indexOf(ctx.serverId);
  const rest = ticket.servers.slice(me + 1).map((server, i) => ({ server, url: ticket.urls?.[me + 1 + i] }));
  const upstream = peerName(req);
  const verifiedUpstream =
    ctx.tls &&
    me > 0 &&
    upstream !== undefined &&
    upstream === ticket.servers[me - 1] &&
    !ctx.revoked.has(upstream);
  return { rest, verifiedUpstream };
}

/** What this server answers for the replicas after it: none reached (no next address), or the next one failed. */
export function restFailed(
  rest: ChainPlace['rest'],
  next?: { code: ReplicaFailure['code']; message: string },
): ReplicaFailure[] {
  if (!next) return rest.map((r) => notAttempted(r.server, 'no address for this server in the ticket'));
  return rest.map((r, i) =>
    i === 0
      ? { server: r.server, code: next.code, message: next.message, attempted: true }
      : notAttempted(r.server, 'the chain broke before this server'),
  );
}

/** A replica the chain never reached. */
function notAttempted(server: string, message: string): ReplicaFailure {
  return { server, code: 'SEDFS_ERR_REPLICATION_FAILED', message, attempted: false };
}

/**
 * A file server forwards a chunk in blocks of this size. Forwarding each 16 KiB TLS record
 * as it came in took ~0.9 s of a file server's ~2.8 s of CPU in a 1 GiB put at R=3 (one
 * socket write, with its TLS record and system call, per piece).
 */
const FORWARD_BLOCK_BYTES = 256 * 1024;

export interface Downstream<T> {
  /** A promise only when the next server is not keeping up. */
  push(piece: Buffer): Promise<void> | undefined;
  end(): void;
  abort(): void;
  result(): Promise<T | { error: SedfsError }>;
}

/**
 * Streams a body on to the next server in the chain (`target`, a PUT with `headers`),
 * `server` in the ticket, whose certificate the connection must show. A failure
 * downstream never fails the local write: it stops forwarding and is reported in the
 * answer instead.
 */
export function forward<T>(
  ctx: FileServerContext,
  target: string,
  headers: Record<string, string>,
  server?: string,
): Downstream<T> {
  const body = new PassThrough({ highWaterMark: 1024 * 1024 });
  let failed: SedfsError | undefined;
  // Over TLS a peer is reached over https only: the ticket would otherwise go in the clear.
  const sent =
    ctx.tls && !target.startsWith('https://')
      ? Promise.reject(new SedfsError('SEDFS_ERR_INSECURE_URL', undefined, { url: new URL(target).origin }))
      : request(target, {
          dispatcher: ctx.agent,
          ...(server === undefined ? {} : { expectedIds: [server] }),
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream', ...headers },
          body,
        });
  const response = sent.then(
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
  // Pieces arrive one TLS record (16 KiB) at a time; each socket write costs a call
  // through undici and Node's streams and a system call, so they go on in blocks.
  let block: Buffer | undefined;
  let filled = 0;
  const send = (bytes: Buffer): Promise<void> | undefined => {
    if (failed || body.destroyed || body.write(bytes)) return undefined;
    // A body destroyed by a failure downstream never drains and may emit an error: the
    // wait ends either way, and the failure shows in `result`, never in the local write.
    return Promise.race([once(body, 'drain').catch(() => undefined), settled]).then(() => undefined);
  };
  return {
    push(piece) {
      if (failed || body.destroyed) return undefined;
      let waiting: Promise<void> | undefined;
      let at = 0;
      while (at < piece.length) {
        block ??= Buffer.allocUnsafe(FORWARD_BLOCK_BYTES);
        const n = piece.copy(block, filled, at);
        filled += n;
        at += n;
        if (filled < FORWARD_BLOCK_BYTES) break;
        const full = block;
        block = undefined;
        filled = 0;
        waiting ??= send(full);
      }
      return waiting;
    },
    end() {
      // The tail is written and the body ended at once: nothing waits for it to drain.
      if (block && filled > 0 && !failed && !body.destroyed) body.write(block.subarray(0, filled));
      block = undefined;
      filled = 0;
      if (!body.destroyed) body.end();
    },
    abort() {
      body.destroy(new Error('upstream write aborted'));
    },
    result: () => settled,
  };
}
