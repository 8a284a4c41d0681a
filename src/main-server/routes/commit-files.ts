import type { FastifyInstance } from 'fastify';
import { COMMIT_BODY_LIMIT, CommitFilesRequest, IdParams } from '../../protocol/main-api.js';
import type { NodeEntry } from '../../protocol/namespace-api.js';
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
      const items = req.body.files.map((f) => ({
        version: f.version,
        blob: ctx.blobs.prepare(req.params.id, { chunks: f.chunks }, user.id),
      }));
      return { nodes: ctx.namespace.commitVersions(user, items) };
    },
  );
}
