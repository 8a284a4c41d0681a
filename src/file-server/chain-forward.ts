import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { errorFromResponse, unreachable } from '../common/http-client.js';
import { type StallWatch, uploadWatch } from '../common/stall-watch.js';
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
  /** Hands a piece on; never waits for the next server (see forward). */
  push(piece: Buffer): void;
  end(): void;
  abort(): void;
  result(): Promise<T | { error: SedfsError }>;
}

/**
 * Streams a body on to the next server in the chain (`target`, a PUT with `headers`),
 * `server` in the ticket, whose certificate the connection must show. A failure
 * downstream never fails the local write: it stops forwarding and is reported in the
 * answer instead. The next server takes the body in its own time, never holding up the
 * one before this (a body is at most one chunk or one batch, held here meanwhile): so a
 * server that stops taking it (it hangs) is found out by the one sending to it alone,
 * after STALL_MS, and named in the answer. Were this one held up too, the one before it
 * would find this one silent as soon, and name it instead.
 */
export function forward<T>(
  ctx: FileServerContext,
  target: string,
  headers: Record<string, string>,
  server?: string,
): Downstream<T> {
  const origin = new URL(target).origin;
  const watch = uploadWatch(ctx.agent, target, server === undefined ? undefined : [server]);
  const outbox = new Outbox(watch);
  let failed = false;
  // Over TLS a peer is reached over https only: the ticket would otherwise go in the clear.
  const sent =
    ctx.tls && !target.startsWith('https://')
      ? Promise.reject(new SedfsError('SEDFS_ERR_INSECURE_URL', undefined, { url: origin }))
      : request(target, {
          dispatcher: ctx.agent,
          ...(server === undefined ? {} : { expectedIds: [server] }),
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream', ...headers },
          // undici takes an iterable body piece by piece (its types leave iterables out).
          body: outbox.pieces() as unknown as Readable,
          signal: watch.signal,
        });
  const response = sent.then(
    async (res) => {
      if (res.statusCode >= 400) throw await errorFromResponse(res, target);
      return (await res.body.json()) as T;
    },
    (err) => {
      throw watch.failure ?? (err instanceof SedfsError ? err : unreachable(target, err));
    },
  );
  const settled = response.then(
    (ok) => {
      watch.stop();
      return ok;
    },
    (err: SedfsError) => {
      failed = true;
      outbox.close();
      watch.stop();
      return { error: err };
    },
  );
  // Pieces arrive one TLS record (16 KiB) at a time; each socket write costs a call
  // through undici and Node's streams and a system call, so they go on in blocks.
  let block: Buffer | undefined;
  let filled = 0;
  return {
    push(piece) {
      if (failed) return;
      let at = 0;
      while (at < piece.length) {
        block ??= Buffer.allocUnsafe(FORWARD_BLOCK_BYTES);
        const n = piece.copy(block, filled, at);
        filled += n;
        at += n;
        if (filled < FORWARD_BLOCK_BYTES) break;
        outbox.add(block);
        block = undefined;
        filled = 0;
      }
    },
    end() {
      if (block && filled > 0 && !failed) outbox.add(block.subarray(0, filled));
      block = undefined;
      filled = 0;
      outbox.end();
    },
    abort() {
      outbox.close();
      watch.fail(new SedfsError('SEDFS_ERR_BODY_INCOMPLETE', 'the write upstream was aborted'));
    },
    result: () => settled,
  };
}

/**
 * A body's blocks waiting for the request downstream to take them. `watch` runs while
 * any block waits (queued, or handed to undici and not yet taken by the connection) and
 * starts again each time one is taken; it stops while the queue waits for upstream.
 */
class Outbox {
  private readonly queue: Buffer[] = [];
  private ended = false;
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(private readonly watch: StallWatch) {}

  add(block: Buffer): void {
    if (this.closed || this.ended) return;
    this.queue.push(block);
    this.watch.waiting();
    this.wake?.();
  }

  /** No more blocks: the body ends once the queued ones are taken. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /** Given up: nothing more is handed over. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.wake?.();
  }

  async *pieces(): AsyncGenerator<Buffer> {
    for (;;) {
      const block = this.queue.shift();
      if (block) {
        yield block;
        // Asked for the next: the connection took this one.
        if (this.queue.length > 0) this.watch.moved();
        else this.watch.stop();
        continue;
      }
      if (this.closed) throw new Error('the body was given up');
      if (this.ended) {
        this.watch.awaitingAnswer();
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }
}
