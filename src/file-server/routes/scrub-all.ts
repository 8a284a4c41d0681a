import type { FastifyInstance } from 'fastify';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import { type FileServerContext, requireKeys, requireMain } from '../context.js';

/**
 * Main asks for a re-hash of everything held here, now and unthrottled (`check
 * --verify`); bad chunks are quarantined and named in the answer.
 */
export function scrubAllRoute(app: FastifyInstance, ctx: FileServerContext): void {
  app.post('/v1/scrub', { bodyLimit: 1024 }, async (req) => {
    requireMain(ctx, req);
    requireKeys(ctx).verifyTicket(req.headers[TICKET_HEADER] as string | undefined, {
      op: 'scrub',
      server: ctx.serverId,
      now: ctx.now(),
    });
    req.log.info('full verification asked for by main');
    const result = await ctx.scrubAll();
    req.log.info({ checked: result.checked, bad: result.bad.length }, 'full verification done');
    return result;
  });
}
