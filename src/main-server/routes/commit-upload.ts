import type { FastifyInstance } from 'fastify';
import { COMMIT_BODY_LIMIT, CommitRequest, type CommitResponse, IdParams } from '../../protocol/main-api.js';
import type { MainContext } from '../context.js';

/** Makes an upload visible, atomically, once every chunk has valid storage receipts. */
export function commitUploadRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: CommitRequest }>(
    '/v1/uploads/:id/commit',
    { schema: { params: IdParams, body: CommitRequest }, bodyLimit: COMMIT_BODY_LIMIT },
    async (req): Promise<CommitResponse> => ctx.blobs.commit(req.params.id, req.body),
  );
}
