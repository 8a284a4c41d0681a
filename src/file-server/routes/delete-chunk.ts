import type { FastifyInstance } from 'fastify';
import { assertChunkId } from '../../protocol/chunk-id.js';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import { type FileServerContext, requireKeys, requireMain } from '../context.js';

/** Main orders a freed chunk removed; only a delete ticket signed by main can do it. */
export function deleteChunkRoute(app: FastifyInstance, ctx: FileServerContext): void {
  app.delete<{ Params: { id: string } }>('/v1/chunks/:id', async (req) => {
    const id = assertChunkId(req.params.id);
    requireMain(ctx, req);
    requireKeys(ctx).verifyTicket(req.headers[TICKET_HEADER] as string | undefined, {
      op: 'delete',
      chunk: id,
      server: ctx.serverId,
      now: ctx.now(),
    });
    await ctx.store.remove(id);
    req.log.info({ chunk: id }, 'chunk deleted by order of main');
    return { deleted: true };
  });
}
