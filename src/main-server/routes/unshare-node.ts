import type { FastifyInstance } from 'fastify';
import { NodeParams, UnshareRequest } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser, userBeforeBody } from '../context.js';

/** Revokes a grant and installs the subtree's new keys in one transaction. */
export function unshareNodeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: UnshareRequest }>(
    '/v1/nodes/:id/unshare',
    {
      schema: { params: NodeParams, body: UnshareRequest },
      bodyLimit: 256 * 1024 * 1024,
      onRequest: userBeforeBody(ctx),
    },
    async (req) => {
      ctx.namespace.unshare(requireUser(ctx, req), req.params.id, req.body);
      return { ok: true };
    },
  );
}
