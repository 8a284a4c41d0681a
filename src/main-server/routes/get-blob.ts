import type { FastifyInstance } from 'fastify';
import { type BlobManifest, IdParams } from '../../protocol/main-api.js';
import { ContentQuery } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/**
 * A bare blob's manifest (its chunks from `from`, at most MANIFEST_PAGE, with their live
 * holders and read tickets), for the user who stored it.
 */
export function getBlobRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get<{ Params: { id: string }; Querystring: ContentQuery }>(
    '/v1/blobs/:id',
    { schema: { params: IdParams, querystring: ContentQuery } },
    async (req): Promise<BlobManifest> =>
      ctx.blobs.manifestFor(req.params.id, requireUser(ctx, req).id, Number(req.query.from ?? 0)),
  );
}
