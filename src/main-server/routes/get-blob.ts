import type { FastifyInstance } from 'fastify';
import { type BlobManifest, IdParams } from '../../protocol/main-api.js';
import type { MainContext } from '../context.js';

/** A blob's manifest: its chunks in order, the live servers holding each, and read tickets. */
export function getBlobRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get<{ Params: { id: string } }>(
    '/v1/blobs/:id',
    { schema: { params: IdParams } },
    async (req): Promise<BlobManifest> => ctx.blobs.manifest(req.params.id),
  );
}
