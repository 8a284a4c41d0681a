import type { FastifyInstance } from 'fastify';
import { type ContentResponse, NodeParams } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/** A file's current version: its wrapped content key and the chunk manifest with read tickets. */
export function getContentRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get<{ Params: { id: string } }>(
    '/v1/nodes/:id/content',
    { schema: { params: NodeParams } },
    async (req): Promise<ContentResponse> => ctx.namespace.content(requireUser(ctx, req), req.params.id),
  );
}
