import type { FastifyInstance } from 'fastify';
import { peerName } from '../../common/tls.js';
import { assertChunkId } from '../../protocol/chunk-id.js';
import { SedfsError } from '../../protocol/errors.js';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import { type FileServerContext, requireKeys } from '../context.js';

/**
 * Streams a chunk exactly as stored. A client checks it itself (by the authentication
 * tag), so its reads are not hashed here. Another file server copying it (repair, over
 * mutual TLS) gets it checked against its id before the last byte leaves, and stores it
 * without hashing again: the copy's one hash runs here, where a replica that rotted on
 * disk is then caught by its own server, cut off mid-body and quarantined at once, so the
 * next repair pass reads another copy. When the receiver did the hashing, it refused
 * the copy and the repair tried the same rotten source again until the scrubber (weekly
 * by default) found it. The same CPU either way: repair speed did not change (W6).
 * The body is written straight to the socket from the store's reused buffers, each
 * write awaited, so no buffer is refilled before the socket has taken it.
 */
export function getChunkRoute(app: FastifyInstance, ctx: FileServerContext): void {
  app.get<{ Params: { id: string } }>('/v1/chunks/:id', async (req, reply) => {
    const id = assertChunkId(req.params.id);
    requireKeys(ctx).verifyTicket(req.headers[TICKET_HEADER] as string | undefined, {
      op: 'read',
      chunk: id,
      server: ctx.serverId,
      now: ctx.now(),
    });
    const res = reply.raw;
    const checked = peerName(req.raw) !== undefined;
    let started = false;
    try {
      await ctx.store.send(
        id,
        (size) => {
          // From here on the answer is ours to write: no error body can follow a header.
          reply.hijack();
          started = true;
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
        },
        (piece) =>
          new Promise((resolve, reject) => {
            res.write(piece, (err) => (err ? reject(err) : resolve()));
          }),
        { checked },
      );
      res.end();
    } catch (err) {
      if (!started) throw err;
      // Mid-body: cut the connection so the reader sees a short body and tries another copy.
      req.log.warn({ chunk: id, reason: (err as Error).message }, 'chunk read failed mid-body');
      res.destroy();
      if (err instanceof SedfsError && err.code === 'SEDFS_ERR_HASH_MISMATCH') {
        // Re-read, and moved aside if it is bad on disk (main hears of it with the next changes).
        const kept = await ctx.store.verify(id).catch(() => true);
        if (!kept) req.log.warn({ chunk: id }, 'corrupt chunk found while copying it: quarantined');
      }
    }
  });
}
