import type { FastifyInstance } from 'fastify';
import { NodeParams, UnshareRequest, type UnshareResponse } from '../../protocol/namespace-api.js';
import { type MainContext, ownerBeforeBody, requireUser } from '../context.js';

/**
 * Revokes a grant, in a transaction of its own: the revoked user is refused from then on,
 * whatever becomes of the key rotation that follows (`POST /v1/nodes/:id/rekey`).
 */
export function unshareNodeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: UnshareRequest }>(
    '/v1/nodes/:id/unshare',
    {
      schema: { params: NodeParams, body: UnshareRequest },
      bodyLimit: 1024,
      onRequest: ownerBeforeBody(ctx, 'unshare'),
    },
    async (req): Promise<UnshareResponse> =>
      ctx.namespace.unshare(requireUser(ctx, req), req.params.id, req.body),
  );
}
