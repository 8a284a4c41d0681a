import type { FastifyInstance } from 'fastify';
import { ChildParams, type NodeEntry } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/** Finds a child by the MAC of its name: main never learns the name itself. */
export function lookupChildRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get<{ Params: { id: string; mac: string } }>(
    '/v1/nodes/:id/children/:mac',
    { schema: { params: ChildParams } },
    async (req): Promise<NodeEntry> =>
      ctx.namespace.lookup(requireUser(ctx, req), req.params.id, req.params.mac),
  );
}
