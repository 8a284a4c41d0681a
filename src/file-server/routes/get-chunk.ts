import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { assertChunkId } from '../../protocol/chunk-id.js';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import { type FileServerContext, requireKeys } from '../context.js';

/**
 * How long a chunk's answer may go without the connection taking a byte before it is
 * cut: undici's default bodyTimeout, with which our clients give up on a silent body
 * themselves. A reader that never reads would otherwise hold the chunk's file and two
 * 2 MiB read buffers for good, and each one more would allocate two more.
 */
export const SEND_IDLE_MS = 60_000;

/**
 * The slowest a whole chunk may be read: a reader that takes a trickle of bytes now and
 * then is never idle, and would hold the file and two 2 MiB buffers for days (a 4 MiB
 * chunk at 1.5 KB a minute). 16 KiB/s gives a 4 MiB chunk four minutes, never less than
 * the idle time.
 */
export const SEND_MIN_BYTES_PER_SECOND = 16 * 1024;

/**
 * How many bytes of `socket`'s connection the kernel has taken so far, or undefined where
 * that cannot be seen: what was handed to the stream handle underneath (`bytesWritten`)
 * less what libuv still queues for it (`writeQueueSize`). It grows in the middle of a
 * write too: a piece's write callback alone said nothing of a reader slower than a piece
 * per idle time (2 MiB a minute, ~35 KB/s), which was cut off while it was still reading.
 * It only grows, so any change is progress: the queue size alone (which Node's own
 * socket timeouts compare, net.js `_onTimeout`) can come back to a size it had while
 * bytes moved, and its equal sizes would then read as a stall. Under TLS it is the
 * handle of the connection underneath (`_parent`), which counts the encrypted bytes
 * the kernel took; the TLS handle's own counters move by whole writes. These are Node
 * internals: where they are missing, a piece's completion alone counts, as before.
 */
export function bytesTaken(socket: Socket | null): number | undefined {
  type Handle = { _parent?: Handle; bytesWritten?: unknown; writeQueueSize?: unknown };
  let handle = (socket as { _handle?: Handle } | null)?._handle;
  while (handle?._parent) handle = handle._parent;
  const handed = handle?.bytesWritten;
  const queued = handle?.writeQueueSize;
  return typeof handed === 'number' && typeof queued === 'number' ? handed - queued : undefined;
}

/**
 * Streams a chunk exactly as stored. The reader checks it (against the chunk id, or
 * the authentication tag once contents are encrypted), so bytes are hashed once per read.
 * The body is written straight to the socket from the store's reused buffers, each
 * write awaited, so no buffer is refilled before the socket has taken it.
 */
export function getChunkRoute(app: FastifyInstance, ctx: FileServerContext): void {
  const idleMs = ctx.sendIdleMs ?? SEND_IDLE_MS;
  const minRate = ctx.sendMinBytesPerSecond ?? SEND_MIN_BYTES_PER_SECOND;
  app.get<{ Params: { id: string } }>('/v1/chunks/:id', async (req, reply) => {
    const id = assertChunkId(req.params.id);
    requireKeys(ctx).verifyTicket(req.headers[TICKET_HEADER] as string | undefined, {
      op: 'read',
      chunk: id,
      server: ctx.serverId,
      now: ctx.now(),
    });
    const res = reply.raw;
    let started = false;
    /**
     * cut the connection if it takes nothing for `idleMs`; refreshed at each piece taken,
     * and where the kernel took part of one meanwhile. Looked at only when it fires, so a
     * steady reader costs one look per 2 MiB piece, and a stalled one is cut 1 to 2 idle
     * times after the kernel last took a byte (it takes them in bursts, of up to a third
     * of the socket's send buffer: a reader slower than that per idle time is still cut).
     */
    let idle: NodeJS.Timeout | undefined;
    /** what the kernel had taken when the timer was last refreshed: more means progress */
    let taken: number | undefined;
    /** fails the piece being written: the socket is destroyed and will not take it */
    let stall: ((err: Error) => void) | undefined;
    /** a piece is with the socket: silence is the reader's, else this server's disk's */
    let writing = false;
    /** why the connection was cut, if it was */
    let cut: string | undefined;
    try {
      await ctx.store.send(
        id,
        (size) => {
          // From here on the answer is ours to write: no error body can follow a header.
          reply.hijack();
          started = true;
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
          const deadline = Date.now() + Math.max(idleMs, (size / minRate) * 1000);
          taken = bytesTaken(res.socket);
          idle = setTimeout(() => {
            const now = bytesTaken(res.socket);
            const late = Date.now() > deadline;
            if (!late && now !== undefined && taken !== undefined && now > taken) {
              taken = now;
              idle?.refresh();
              return;
            }
            // Destroyed, the socket reads nothing more from the store's buffer: it can go.
            res.destroy();
            // Cut either way: a reader held up by this server's disk does better at another
            // copy. With no piece at the socket, the send fails at its next write.
            cut = late
              ? `the reader took the chunk slower than ${minRate} bytes/s`
              : writing
                ? `the reader took nothing for ${idleMs / 1000} s`
                : `the chunk's next block took over ${idleMs / 1000} s to read from this server's disk`;
            if (writing) stall?.(new Error(cut));
          }, idleMs);
          idle.unref();
        },
        (piece) =>
          new Promise((resolve, reject) => {
            stall = reject;
            writing = true;
            res.write(piece, (err) => {
              writing = false;
              // The baseline moves where the timer restarts, not at the write: the
              // response corks its socket and hands the piece over at the next tick.
              idle?.refresh();
              taken = bytesTaken(res.socket);
              if (err) reject(err);
              else resolve();
            });
          }),
      );
      res.end();
    } catch (err) {
      if (!started) throw err;
      // Mid-body (a disk error, a reader gone or stalled): cut the connection so the
      // reader sees a short body and tries another copy.
      req.log.warn({ chunk: id, reason: cut ?? (err as Error).message }, 'chunk send failed mid-body');
      res.destroy();
    } finally {
      clearTimeout(idle);
    }
  });
}
