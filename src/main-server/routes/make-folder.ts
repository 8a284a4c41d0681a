import type { FastifyInstance } from 'fastify';
import { MkdirRequest, type NodeEntry, NodeParams } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

export function makeFolderRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: MkdirRequest }>(
    '/v1/nodes/:id/children',
    { schema: { params: NodeParams, body: MkdirRequest }, bodyLimit: 8192 },
    async (req): Promise<NodeEntry> => ctx.namespace.mkdir(requireUser(ctx, req), req.params.id, req.body),
  );
}
