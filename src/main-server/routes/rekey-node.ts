import type { FastifyInstance } from 'fastify';
import {
  NodeParams,
  REKEY_BODY_LIMIT,
  RekeyRequest,
  type RekeyResponse,
} from '../../protocol/namespace-api.js';
import { type MainContext, requireUser, userBeforeBody } from '../context.js';

/**
 * One part of the new keys of a subtree an unshare left to be re-keyed; the last one
 * installs them all.
 */
export function rekeyNodeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: RekeyRequest }>(
    '/v1/nodes/:id/rekey',
    {
      schema: { params: NodeParams, body: RekeyRequest },
      bodyLimit: REKEY_BODY_LIMIT,
      onRequest: userBeforeBody(ctx),
    },
    async (req): Promise<RekeyResponse> =>
      ctx.namespace.rekey(requireUser(ctx, req), req.params.id, req.body),
  );
}
