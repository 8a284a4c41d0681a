import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ChunkId, IdParams } from '../../protocol/main-api.js';
import { type MainContext, requireServer, serverBeforeBody } from '../context.js';

const Body = Type.Object(
  { chunks: Type.Array(ChunkId, { minItems: 1, maxItems: 10_000 }) },
  { additionalProperties: false },
);

/** A file server's scrubber found chunks that no longer match their ids (already quarantined there). */
export function serverCorruptRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: { chunks: string[] } }>(
    '/v1/servers/:id/corrupt',
    { schema: { params: IdParams, body: Body }, bodyLimit: 1024 * 1024, onRequest: serverBeforeBody(ctx) },
    async (req) => {
      requireServer(ctx, req, req.params.id);
      let marked = 0;
      for (const chunk of req.body.chunks) if (ctx.store.markReplicaCorrupt(chunk, req.params.id)) marked++;
      ctx.log.warn(
        { server: req.params.id, chunks: req.body.chunks.length, marked },
        'corrupt replicas reported by a scrubber',
      );
      // Only these chunks lost a copy: repair looks at them, not at the whole map.
      ctx.repairer.kickChunks(req.body.chunks);
      return { marked };
    },
  );
}
