import type { FastifyInstance } from 'fastify';
import { LockRequest, type LockResponse, NodeParams } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/** Takes or renews an exclusive write lease; others' writes fail until it ends or expires. */
export function lockNodeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: { ttlSeconds: number } }>(
    '/v1/nodes/:id/lock',
    { schema: { params: NodeParams, body: LockRequest }, bodyLimit: 1024 },
    async (req): Promise<LockResponse> =>
      ctx.namespace.lock(requireUser(ctx, req), req.params.id, req.body.ttlSeconds),
  );
}
