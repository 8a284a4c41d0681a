import type { FastifyInstance } from 'fastify';
import {
  NodeParams,
  SUBTREE_PAGE,
  SubtreeQuery,
  type SubtreeResponse,
} from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/**
 * A page of everything under a node its owner is about to re-key (unshare): at most
 * SUBTREE_PAGE nodes (or `limit`), after the node `after`.
 */
export function getSubtreeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get<{ Params: { id: string }; Querystring: SubtreeQuery }>(
    '/v1/nodes/:id/subtree',
    { schema: { params: NodeParams, querystring: SubtreeQuery } },
    async (req): Promise<SubtreeResponse> =>
      ctx.namespace.subtree(requireUser(ctx, req), req.params.id, {
        after: req.query.after,
        limit: Math.min(Number(req.query.limit ?? SUBTREE_PAGE), SUBTREE_PAGE),
      }),
  );
}
