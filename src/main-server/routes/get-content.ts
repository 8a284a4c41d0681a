import type { FastifyInstance } from 'fastify';
import { MANIFEST_PAGE } from '../../protocol/limits.js';
import { ContentQuery, type ContentResponse, NodeParams } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/**
 * A file's current version: its wrapped content key and one page of its chunk manifest
 * (from chunk `from`, at most MANIFEST_PAGE chunks) with read tickets.
 */
export function getContentRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get<{ Params: { id: string }; Querystring: ContentQuery }>(
    '/v1/nodes/:id/content',
    { schema: { params: NodeParams, querystring: ContentQuery } },
    async (req): Promise<ContentResponse> =>
      ctx.namespace.content(requireUser(ctx, req), req.params.id, {
        from: Number(req.query.from ?? 0),
        count: MANIFEST_PAGE,
      }),
  );
}
