import type { FastifyInstance } from 'fastify';
import { IdParams, type PlacementAnswerResponse, PlacementRequest } from '../../protocol/main-api.js';
import { type MainContext, requireUser, userBeforeBody } from '../context.js';

/** Chooses servers for a batch of an upload's chunks and signs a write ticket for each (or each batch of them). */
export function placeChunksRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: PlacementRequest }>(
    '/v1/uploads/:id/placements',
    {
      schema: { params: IdParams, body: PlacementRequest },
      bodyLimit: 256 * 1024,
      onRequest: userBeforeBody(ctx),
    },
    async (req): Promise<PlacementAnswerResponse> =>
      ctx.blobs.place(req.params.id, req.body, requireUser(ctx, req).id),
  );
}
