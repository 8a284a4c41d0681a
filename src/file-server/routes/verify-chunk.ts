import type { FastifyInstance } from 'fastify';
import { assertChunkId } from '../../protocol/chunk-id.js';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import { type FileServerContext, requireKeys, requireMain } from '../context.js';

/** Main asks for a re-hash of one chunk; a bad one is quarantined before the answer. */
export function verifyChunkRoute(app: FastifyInstance, ctx: FileServerContext): void {
  app.post<{ Params: { id: string } }>('/v1/chunks/:id/verify', { bodyLimit: 1024 }, async (req) => {
    const id = assertChunkId(req.params.id);
    requireMain(ctx, req);
    requireKeys(ctx).verifyTicket(req.headers[TICKET_HEADER] as string | undefined, {
      op: 'verify',
      chunk: id,
      server: ctx.serverId,
      now: ctx.now(),
    });
    const ok = await ctx.store.verify(id);
    if (!ok) req.log.warn({ chunk: id }, 'verify order found a corrupt chunk: quarantined');
    return { ok };
  });
}
