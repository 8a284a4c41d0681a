import type { FastifyInstance } from 'fastify';
import { IdParams, type InventoryResponse } from '../../protocol/main-api.js';
import { type MainContext, requireServer } from '../context.js';

/** A file server's full inventory at registration: its chunk ids, one per line, streamed. */
export function serverInventoryRoute(app: FastifyInstance, ctx: MainContext): void {
  app.put<{ Params: { id: string } }>(
    '/v1/servers/:id/inventory',
    { schema: { params: IdParams } },
    async (req): Promise<InventoryResponse> => {
      requireServer(ctx, req, req.params.id);
      return ctx.reconciler.ingest(req.params.id, req.raw);
    },
  );
}
