import type { FastifyInstance } from 'fastify';
import type { ShareEntry } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/** What others shared with the caller: the /shared view. */
export function listSharesRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get(
    '/v1/shares',
    async (req): Promise<{ shares: ShareEntry[] }> => ({
      shares: ctx.namespace.shares(requireUser(ctx, req)),
    }),
  );
}
