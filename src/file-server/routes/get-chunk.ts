import type { FastifyInstance } from 'fastify';
import { assertChunkId } from '../../protocol/chunk-id.js';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import { type FileServerContext, requireKeys } from '../context.js';

/**
 * Streams a chunk exactly as stored. The reader checks it (against the chunk id, or
 * the authentication tag once contents are encrypted), so bytes are hashed once per read.
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
      );
      res.end();
    } catch (err) {
      if (!started) throw err;
      // Mid-body: cut the connection so the reader sees a short body and tries another copy.
      req.log.warn({ chunk: id, reason: (err as Error).message }, 'chunk read failed mid-body');
      res.destroy();
    }
  });
}
