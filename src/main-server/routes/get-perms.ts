import type { FastifyInstance } from 'fastify';
import { NodeParams, type PermsResponse } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

export function getPermsRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get<{ Params: { id: string } }>(
    '/v1/nodes/:id/perms',
    { schema: { params: NodeParams } },
    async (req): Promise<PermsResponse> => ctx.namespace.perms(requireUser(ctx, req), req.params.id),
  );
}
