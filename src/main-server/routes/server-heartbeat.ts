import type { FastifyInstance } from 'fastify';
import { IdParams, ServerStatsBody } from '../../protocol/main-api.js';
import { type MainContext, requireJoinToken } from '../context.js';

export function serverHeartbeatRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: ServerStatsBody }>(
    '/v1/servers/:id/heartbeat',
    { schema: { params: IdParams, body: ServerStatsBody }, bodyLimit: 4096 },
    async (req) => {
      requireJoinToken(ctx, req.headers.authorization);
      ctx.registry.heartbeat(req.params.id, req.body);
      return { ok: true };
    },
  );
}
