import type { FastifyInstance } from 'fastify';
import { SedfsError } from '../../protocol/errors.js';
import { IdParams } from '../../protocol/main-api.js';
import { type MainContext, requireUser } from '../context.js';

/**
 * (admin) Removes a file server for good: its certificate is refused by main and, via
 * heartbeats, by every other server; it gets no new one; its copies stop counting, so
 * repair restores every chunk it held on the others. Also takes an id that only enrolled.
 */
export function removeServerRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string } }>(
    '/v1/servers/:id/remove',
    { schema: { params: IdParams }, bodyLimit: 1024 },
    async (req) => {
      const user = requireUser(ctx, req);
      if (!user.admin) throw new SedfsError('SEDFS_ERR_ADMIN_ONLY');
      // An id that only enrolled is removed too: its certificate must stop working.
      if (!ctx.store.getServer(req.params.id) && ctx.store.enrolledKey(req.params.id) === undefined)
        throw new SedfsError('SEDFS_ERR_UNKNOWN_SERVER');
      const removed = ctx.store.markRemoved(req.params.id, Date.now());
      if (removed) {
        ctx.log.warn(
          { server: req.params.id, by: user.id },
          'file server removed from the cluster: repairing its chunks elsewhere',
        );
        ctx.repairer.kick();
      }
      return { removed: true };
    },
  );
}
