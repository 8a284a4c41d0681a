import type { FastifyInstance } from 'fastify';
import {
  NodeParams,
  REKEY_BODY_LIMIT,
  RekeyRequest,
  type RekeyResponse,
} from '../../protocol/namespace-api.js';
import { bodyWithinBudget, type MainContext, ownerBeforeBody, requireUser } from '../context.js';

/**
 * One part of the new keys of a subtree an unshare left to be re-keyed; the last one
 * installs them all. Only the node's owner gets as far as main reading the body.
 */
export function rekeyNodeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: RekeyRequest }>(
    '/v1/nodes/:id/rekey',
    {
      schema: { params: NodeParams, body: RekeyRequest },
      bodyLimit: REKEY_BODY_LIMIT,
      // The caller first: a stranger's body takes nothing of the budget.
      onRequest: [ownerBeforeBody(ctx, 'rekey'), bodyWithinBudget(ctx, REKEY_BODY_LIMIT)],
    },
    async (req): Promise<RekeyResponse> =>
      ctx.namespace.rekey(requireUser(ctx, req), req.params.id, req.body),
  );
}
