import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { errorFromResponse } from '../common/http-client.js';
import { unreachable } from '../common/http-errors.js';
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
  /** Hands a piece on; a promise only when the next server is not keeping up. */
  push(piece: Buffer): Promise<void> | undefined;
  end(): void;
  abort(): void;
  result(): Promise<T | { error: SedfsError }>;
}

/**
 * Streams a body on to the next server in the chain (`target`, a PUT with `headers`),
 * `server` in the ticket, whose certificate the connection must show. A failure
 * downstream never fails the local write: it stops forwarding and is reported in the
 * answer instead. At most FORWARD_QUEUE_BYTES wait for the next server: beyond that the
 * server before this one waits too (`push`'s promise). A next server that hangs is found
 * out by its StallWatch; the one before this, held up meanwhile, finds this one still
 * answering its health checks and waits, so the hung one is the one named.
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
      watch.finish();
      return ok;
    },
    (err: SedfsError) => {
      failed = true;
      outbox.close();
      watch.finish();
      return { error: err };
    },
  );
  // Pieces arrive one TLS record (16 KiB) at a time; each socket write costs a call
  // through undici and Node's streams and a system call, so they go on in blocks.
  let block: Buffer | undefined;
  let filled = 0;
  return {
    push(piece) {
      if (failed) return undefined;
      let waiting: Promise<void> | undefined;
      let at = 0;
      while (at < piece.length) {
        block ??= Buffer.allocUnsafe(FORWARD_BLOCK_BYTES);
        const n = piece.copy(block, filled, at);
        filled += n;
        at += n;
        if (filled < FORWARD_BLOCK_BYTES) break;
        waiting ??= outbox.add(block);
        block = undefined;
        filled = 0;
      }
      return waiting;
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

/** Bytes of a body that may wait for the next server before the one before this waits too. */
const FORWARD_QUEUE_BYTES = 1024 * 1024;

/**
 * A body's blocks waiting for the request downstream to take them. `watch` runs from
 * the first block undici takes (connecting is undici's to time) while any block waits,
 * and starts again each time one is taken; it stops while the queue waits for upstream.
 */
class Outbox {
  private readonly queue: Buffer[] = [];
  /** bytes queued or handed to undici and not yet taken */
  private queued = 0;
  private taking = false;
  private ended = false;
  private closed = false;
  private wake: (() => void) | undefined;
  private readonly roomWaiters: (() => void)[] = [];

  constructor(private readonly watch: StallWatch) {}

  /** Queues `block`; a promise, resolved once there is room again, when the queue is full. */
  add(block: Buffer): Promise<void> | undefined {
    if (this.closed || this.ended) return undefined;
    this.queue.push(block);
    this.queued += block.length;
    if (this.taking) this.watch.waiting();
    this.wake?.();
    if (this.queued <= FORWARD_QUEUE_BYTES) return undefined;
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** No more blocks: the body ends once the queued ones are taken. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /** Given up: nothing more is handed over, and nobody waits for room. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.queued = 0;
    this.wake?.();
    this.roomFreed();
  }

  async *pieces(): AsyncGenerator<Buffer> {
    for (;;) {
      const block = this.queue.shift();
      if (block) {
        this.taking = true;
        this.watch.moved();
        yield block;
        // Asked for the next: the connection took this one.
        this.queued = Math.max(0, this.queued - block.length);
        this.roomFreed();
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

  private roomFreed(): void {
    if (this.queued > FORWARD_QUEUE_BYTES && !this.closed) return;
    for (const resolve of this.roomWaiters.splice(0)) resolve();
  }
}
