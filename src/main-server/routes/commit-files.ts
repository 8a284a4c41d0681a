import type { FastifyInstance } from 'fastify';
import { COMMIT_BODY_LIMIT, CommitFilesRequest, IdParams } from '../../protocol/main-api.js';
import type { NodeEntry } from '../../protocol/namespace-api.js';
import type { PreparedBlob } from '../blob-service.js';
import { bodyWithinBudget, type MainContext, requireUser, uploaderBeforeBody } from '../context.js';

/**
 * Many small files at once: each entry's chunks (with receipts) become a blob and a file
 * version, all in one transaction, so a folder of small files costs one commit.
 */
export function commitFilesRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: CommitFilesRequest }>(
    '/v1/uploads/:id/commit-files',
    {
      schema: { params: IdParams, body: CommitFilesRequest },
      bodyLimit: COMMIT_BODY_LIMIT,
      // The caller first: a stranger's body takes nothing of the budget.
      onRequest: [uploaderBeforeBody(ctx), bodyWithinBudget(ctx, COMMIT_BODY_LIMIT)],
    },
    async (req): Promise<{ nodes: NodeEntry[] }> => {
      const user = requireUser(ctx, req);
      const blobs = ctx.blobs.prepareMany(
        req.params.id,
        req.body.files.map((f) => ({ chunks: f.chunks })),
        user.id,
      );
      const items = req.body.files.map((f, i) => ({ version: f.version, blob: blobs[i] as PreparedBlob }));
      return { nodes: ctx.namespace.commitVersions(user, items) };
    },
  );
}
