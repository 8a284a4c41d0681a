import type { FastifyInstance } from 'fastify';
import { MoveRequest, NodeParams } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/** Rename or move in one transaction; the client re-wraps the key and re-encrypts the name. */
export function moveNodeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: MoveRequest }>(
    '/v1/nodes/:id/move',
    { schema: { params: NodeParams, body: MoveRequest }, bodyLimit: 8192 },
    async (req) => {
      ctx.namespace.move(requireUser(ctx, req), req.params.id, req.body);
      return { ok: true };
    },
  );
}
