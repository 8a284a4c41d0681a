import type { FastifyInstance } from 'fastify';
import { SedfsError } from '../../protocol/errors.js';
import { CONTENTS_MAX_CHUNKS, ContentsRequest, type ContentsResponse } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/**
 * Many files' current versions in one request, each as `GET /v1/nodes/:id/content`
 * answers it or with its own error: `get -r` of a folder of small files asked once per
 * file (2,000 requests for 2,000 files). Each file is authorised (and a denial audited)
 * on its own. A file whose chunks (each a signed ticket) would take the answer past
 * CONTENTS_MAX_CHUNKS is answered SEDFS_ERR_BATCH_FULL; files after it that fit still are.
 */
export function getContentsRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Body: ContentsRequest }>(
    '/v1/contents',
    { schema: { body: ContentsRequest }, bodyLimit: 16 * 1024 },
    async (req): Promise<ContentsResponse> => {
      const user = requireUser(ctx, req);
      let chunksLeft = CONTENTS_MAX_CHUNKS;
      const refused: Record<string, number> = {};
      const contents = req.body.ids.map((id) => {
        try {
          const content = ctx.namespace.content(user, id, { maxChunks: chunksLeft });
          chunksLeft -= content.manifest.chunks.length;
          return content;
        } catch (err) {
          if (!(err instanceof SedfsError)) throw err;
          refused[err.code] = (refused[err.code] ?? 0) + 1;
          return { id, ...err.toJSON() };
        }
      });
      // Counts only: a folder's files removed meanwhile, or too large for a batch, are normal.
      if (Object.keys(refused).length > 0) req.log.info({ refused }, 'contents not given for some files');
      return { contents };
    },
  );
}
