import type { FastifyInstance } from 'fastify';
import type { ServersResponse } from '../../protocol/main-api.js';
import { type MainContext, requireUser } from '../context.js';

/** Every known file server with its derived up/down state; needs a session. */
export function listServersRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get('/v1/servers', async (req): Promise<ServersResponse> => {
    requireUser(ctx, req);
    return { servers: ctx.registry.view() };
  });
}
