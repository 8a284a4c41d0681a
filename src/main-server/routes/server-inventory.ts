import type { FastifyInstance } from 'fastify';
import { SedfsError } from '../../protocol/errors.js';
import { IdParams, type InventoryResponse, LISTED_AFTER_HEADER } from '../../protocol/main-api.js';
import { type MainContext, requireServer, serverBeforeBody } from '../context.js';

/** A file server's full inventory at registration: its chunk ids, one per line, streamed. */
export function serverInventoryRoute(app: FastifyInstance, ctx: MainContext): void {
  app.put<{ Params: { id: string } }>(
    '/v1/servers/:id/inventory',
    // The caller is checked from the headers: a body sent as JSON would be read and
    // parsed (up to 1 MiB) before the handler ran, for anyone.
    { schema: { params: IdParams }, onRequest: serverBeforeBody(ctx) },
    async (req): Promise<InventoryResponse> => {
      requireServer(ctx, req, req.params.id);
      return ctx.reconciler.ingest(req.params.id, req.raw, listedAfter(req.headers[LISTED_AFTER_HEADER]));
    },
  );
}

/** The header's time (see LISTED_AFTER_HEADER); undefined from servers before it. */
function listedAfter(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[0-9]{1,15}$/.test(value))
    throw new SedfsError(
      'SEDFS_ERR_BAD_REQUEST',
      `${LISTED_AFTER_HEADER} must be a time in milliseconds (main's, from its last answer)`,
    );
  return Number(value);
}
