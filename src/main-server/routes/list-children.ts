import type { FastifyInstance } from 'fastify';
import { type ChildrenResponse, NodeParams } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

export function listChildrenRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get<{ Params: { id: string } }>(
    '/v1/nodes/:id/children',
    { schema: { params: NodeParams } },
    async (req): Promise<ChildrenResponse> => ({
      entries: ctx.namespace.children(requireUser(ctx, req), req.params.id),
    }),
  );
}
