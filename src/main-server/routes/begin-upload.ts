import type { FastifyInstance } from 'fastify';
import { BeginUploadRequest, type BeginUploadResponse } from '../../protocol/main-api.js';
import { type MainContext, requireUser } from '../context.js';

export function beginUploadRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Body: BeginUploadRequest }>(
    '/v1/uploads',
    { schema: { body: BeginUploadRequest }, bodyLimit: 1024 },
    async (req): Promise<BeginUploadResponse> => ctx.blobs.begin(req.body.replicas, requireUser(ctx, req).id),
  );
}
