import type { FastifyInstance } from 'fastify';
import type { ServersResponse } from '../../protocol/main-api.js';
import type { MainContext } from '../context.js';

/** Every known file server with its derived up/down state; clients use the up ones. */
export function listServersRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get('/v1/servers', async (): Promise<ServersResponse> => ({ servers: ctx.registry.view() }));
}
