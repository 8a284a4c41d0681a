import type { FastifyInstance } from 'fastify';
import type { MainContext } from '../context.js';

export function logoutRoute(app: FastifyInstance, ctx: MainContext): void {
  app.delete('/v1/sessions/current', async (req) => {
    ctx.accounts.logout(req.headers.authorization);
    return { ok: true };
  });
}
