import type { FastifyInstance } from 'fastify';
import { RegisterRequest, type RegisterResponse } from '../../protocol/main-api.js';
import { type MainContext, requireServer } from '../context.js';

/** A file server joins (or rejoins) the cluster; its inventory follows on its own route. */
export function registerServerRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Body: RegisterRequest }>(
    '/v1/servers/register',
    { schema: { body: RegisterRequest }, bodyLimit: 16 * 1024 },
    async (req): Promise<RegisterResponse> => {
      requireServer(ctx, req, req.body.id);
      const at = ctx.reconciler.mark();
      const rec = await ctx.registry.register(req.body, req.socket.remoteAddress ?? '127.0.0.1');
      return {
        id: rec.id,
        url: rec.url,
        receiptKey: rec.receiptKey,
        ticketPublicKey: ctx.signer.publicKeyPem,
        heartbeatIntervalMs: ctx.heartbeatIntervalMs,
        at,
      };
    },
  );
}
