import type { FastifyInstance } from 'fastify';
import { HeartbeatRequest, type HeartbeatResponse, IdParams } from '../../protocol/main-api.js';
import { type MainContext, requireServer, serverBeforeBody } from '../context.js';

/**
 * A file server is alive; with its stats come the chunks it gained and lost since the
 * last beat, so main's map follows the disk between full inventories.
 */
export function serverHeartbeatRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: HeartbeatRequest }>(
    '/v1/servers/:id/heartbeat',
    {
      schema: { params: IdParams, body: HeartbeatRequest },
      bodyLimit: 2 * 1024 * 1024,
      onRequest: serverBeforeBody(ctx),
    },
    async (req): Promise<HeartbeatResponse> => {
      requireServer(ctx, req, req.params.id);
      const at = ctx.reconciler.mark();
      const { added = [], removed = [], ...stats } = req.body;
      const server = req.params.id;
      const returned = ctx.registry.heartbeat(server, stats);
      const rec = ctx.store.getServer(server);
      // Back from a long silence, or never compared (a main restored from a backup knows
      // servers registered before its snapshot): compare everything, its beats can only
      // say what changed since the last one.
      if (rec && (returned || rec.inventoryAt === 0)) ctx.reconciler.pullUnlessUnderway(rec);
      const reply: HeartbeatResponse = { ok: true, removed: ctx.registry.removed(), at };
      if (added.length + removed.length === 0) return reply;
      const { adopted, dropped } = ctx.store.applyChanges(server, added, removed, Date.now());
      if (dropped > 0) {
        ctx.log.warn(
          { server, dropped, sample: removed.slice(0, 20) },
          'a file server no longer holds some replicas: repairing',
        );
        // Only these chunks can have fallen short: repair looks at them, not at the whole map.
        ctx.repairer.kickChunks(removed);
      }
      if (adopted > 0) ctx.log.info({ server, adopted }, 'replicas main did not know of were adopted');
      return reply;
    },
  );
}
