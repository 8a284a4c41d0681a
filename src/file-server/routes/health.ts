import type { FastifyInstance } from 'fastify';
import type { FileServerContext } from '../context.js';

export function healthRoute(app: FastifyInstance, ctx: FileServerContext): void {
  app.get('/v1/health', async () => ({ id: ctx.serverId, joined: ctx.keys() !== undefined }));
}
