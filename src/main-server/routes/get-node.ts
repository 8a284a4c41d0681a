import type { FastifyInstance } from 'fastify';
import { type NodeEntry, NodeParams } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';
import { toEntry } from '../namespace.js';

export function getNodeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get<{ Params: { id: string } }>(
    '/v1/nodes/:id',
    { schema: { params: NodeParams } },
    async (req): Promise<NodeEntry> => toEntry(ctx.namespace.node(requireUser(ctx, req), req.params.id)),
  );
}
