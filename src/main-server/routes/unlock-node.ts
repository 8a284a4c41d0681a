import type { FastifyInstance } from 'fastify';
import { NodeParams } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

export function unlockNodeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.delete<{ Params: { id: string } }>(
    '/v1/nodes/:id/lock',
    { schema: { params: NodeParams }, bodyLimit: 1024 },
    async (req) => {
      ctx.namespace.unlock(requireUser(ctx, req), req.params.id);
      return { ok: true };
    },
  );
}
