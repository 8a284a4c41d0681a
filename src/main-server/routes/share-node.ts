import type { FastifyInstance } from 'fastify';
import { NodeParams, ShareRequest } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/** The owner grants read or write on a node; its key and name come sealed to the grantee. */
export function shareNodeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: ShareRequest }>(
    '/v1/nodes/:id/grants',
    { schema: { params: NodeParams, body: ShareRequest }, bodyLimit: 8192 },
    async (req) => {
      ctx.namespace.share(requireUser(ctx, req), req.params.id, req.body);
      return { ok: true };
    },
  );
}
