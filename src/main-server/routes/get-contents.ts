import type { FastifyInstance } from 'fastify';
import { SedfsError } from '../../protocol/errors.js';
import { CONTENTS_MAX_CHUNKS, ContentsRequest, type ContentsResponse } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/**
 * Many files' current versions in one request, each as `GET /v1/nodes/:id/content`
 * answers it or with its own error: `get -r` of a folder of small files asked once per
 * file (2,000 requests for 2,000 files). Each file is authorised (and a denial audited)
 * on its own. Once the answer holds CONTENTS_MAX_CHUNKS chunks, each a signed ticket,
 * the rest are answered SEDFS_ERR_BATCH_FULL.
 */
export function getContentsRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Body: ContentsRequest }>(
    '/v1/contents',
    { schema: { body: ContentsRequest }, bodyLimit: 16 * 1024 },
    async (req): Promise<ContentsResponse> => {
      const user = requireUser(ctx, req);
      let chunksLeft = CONTENTS_MAX_CHUNKS;
      const refused: { id: string; code: string }[] = [];
      const contents = req.body.ids.map((id) => {
        try {
          const content = ctx.namespace.content(user, id, { maxChunks: chunksLeft });
          chunksLeft -= content.manifest.chunks.length;
          return content;
        } catch (err) {
          if (!(err instanceof SedfsError)) throw err;
          refused.push({ id, code: err.code });
          return { id, ...err.toJSON() };
        }
      });
      if (refused.length > 0) req.log.warn({ refused }, 'contents refused for some files');
      return { contents };
    },
  );
}
