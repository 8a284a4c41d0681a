import type { FastifyInstance } from 'fastify';
import type { MainContext } from '../context.js';

/**
 * Ends the session whose token is given. DELETE may carry a body (Fastify parses one up
 * to its 1 MiB default before any handler runs): none is needed, so little is read.
 */
export function logoutRoute(app: FastifyInstance, ctx: MainContext): void {
  app.delete('/v1/sessions/current', { bodyLimit: 1024 }, async (req) => {
    ctx.accounts.logout(req.headers.authorization);
    return { ok: true };
  });
}
