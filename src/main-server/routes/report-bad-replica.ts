import type { FastifyInstance } from 'fastify';
import { BadReplicaRequest, ChunkParams } from '../../protocol/main-api.js';
import { type MainContext, requireUser } from '../context.js';

/** A reader tells main that a server returned bytes that did not match the chunk. */
export function reportBadReplicaRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Params: { id: string }; Body: BadReplicaRequest }>(
    '/v1/chunks/:id/bad-replica',
    { schema: { params: ChunkParams, body: BadReplicaRequest }, bodyLimit: 1024 },
    async (req) => {
      const user = requireUser(ctx, req);
      // A client's word alone does not condemn a replica: the server re-hashes it first,
      // within the user's allowance and once at a time per replica. The answer is the
      // same either way: it tells nothing about what main records.
      if (ctx.blobs.reportBadReplica(user.id, req.params.id, req.body.server))
        void ctx.repairer.verifyReplica(req.params.id, req.body.server);
      return { ok: true };
    },
  );
}
