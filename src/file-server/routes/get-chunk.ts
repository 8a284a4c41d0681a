import type { FastifyInstance } from 'fastify';
import { assertChunkId } from '../../protocol/chunk-id.js';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import { type FileServerContext, requireKeys } from '../context.js';

/**
 * Streams a chunk exactly as stored. The reader checks it (against the chunk id, or
 * the authentication tag once contents are encrypted), so bytes are hashed once per read.
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
    const { size, stream } = await ctx.store.openRead(id);
    return reply
      .header('content-type', 'application/octet-stream')
      .header('content-length', size)
      .send(stream);
  });
}
