import type { FastifyInstance } from 'fastify';
import { SedfsError } from '../../protocol/errors.js';
import { ContentsRequest, type ContentsResponse } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/**
 * Many files' current versions in one request, each as `GET /v1/nodes/:id/content`
 * answers it or with its own error: `get -r` of a folder of small files asked once per
 * file (2,000 requests for 2,000 files). Each file is authorised (and audited) on its own.
 */
export function getContentsRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Body: ContentsRequest }>(
    '/v1/contents',
    { schema: { body: ContentsRequest } },
    async (req): Promise<ContentsResponse> => {
      const user = requireUser(ctx, req);
      return {
        contents: req.body.ids.map((id) => {
          try {
            return ctx.namespace.content(user, id);
          } catch (err) {
            if (err instanceof SedfsError) return { id, ...err.toJSON() };
            throw err;
          }
        }),
      };
    },
  );
}
