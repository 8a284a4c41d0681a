import type { FastifyInstance } from 'fastify';
import { DeleteQuery, NodeParams } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

export function deleteNodeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.delete<{ Params: { id: string }; Querystring: { recursive?: 'true' | 'false' } }>(
    '/v1/nodes/:id',
    { schema: { params: NodeParams, querystring: DeleteQuery }, bodyLimit: 1024 },
    async (req) => {
      ctx.namespace.remove(requireUser(ctx, req), req.params.id, req.query.recursive === 'true');
      return { ok: true };
    },
  );
}
