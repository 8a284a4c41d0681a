import type { FastifyInstance } from 'fastify';
import { COMMIT_BODY_LIMIT, CommitRequest, type CommitResponse, IdParams } from '../../protocol/main-api.js';
import type { NodeEntry } from '../../protocol/namespace-api.js';
import { bodyWithinBudget, type MainContext, requireUser, uploaderBeforeBody } from '../context.js';

/**
 * Makes an upload visible, atomically, once every chunk has valid storage receipts:
 * as a new file or file version when the body says so, else as a bare blob.
 */
export function commitUploadRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: CommitRequest }>(
    '/v1/uploads/:id/commit',
    {
      schema: { params: IdParams, body: CommitRequest },
      bodyLimit: COMMIT_BODY_LIMIT,
      // The caller first: a stranger's body takes nothing of the budget.
      onRequest: [uploaderBeforeBody(ctx), bodyWithinBudget(ctx, COMMIT_BODY_LIMIT)],
    },
    async (req): Promise<CommitResponse & { node?: NodeEntry }> => {
      const user = requireUser(ctx, req);
      if (!req.body.version) return ctx.blobs.commit(req.params.id, req.body, user.id);
      const prepared = ctx.blobs.prepare(req.params.id, req.body, user.id);
      const node = ctx.namespace.commitVersion(user, req.body.version, prepared);
      return { ...prepared.response, node };
    },
  );
}
