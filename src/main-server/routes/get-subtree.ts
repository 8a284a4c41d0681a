import type { FastifyInstance } from 'fastify';
import { NodeParams, type SubtreeResponse } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/** Everything under a node its owner is about to re-key (unshare). */
export function getSubtreeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get<{ Params: { id: string } }>(
    '/v1/nodes/:id/subtree',
    { schema: { params: NodeParams } },
    async (req): Promise<SubtreeResponse> => ctx.namespace.subtree(requireUser(ctx, req), req.params.id),
  );
}
