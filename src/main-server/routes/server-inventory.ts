import type { FastifyInstance } from 'fastify';
import { isChunkId } from '../../protocol/chunk-id.js';
import { SedfsError } from '../../protocol/errors.js';
import { IdParams, type InventoryResponse } from '../../protocol/main-api.js';
import { type MainContext, requireJoinToken } from '../context.js';

const BATCH = 10_000;
/** Ids of missing and extra chunks named in the log, so one line stays readable. */
const LOG_SAMPLE = 20;

/**
 * A file server's full inventory: its chunk ids, one per line, streamed. Main compares
 * it with what it expects there and records what is missing and extra (the original's
 * "missing or additional files"); repair acts on that record.
 */
export function serverInventoryRoute(app: FastifyInstance, ctx: MainContext): void {
  app.put<{ Params: { id: string } }>(
    '/v1/servers/:id/inventory',
    { schema: { params: IdParams } },
    async (req): Promise<InventoryResponse> => {
      requireJoinToken(ctx, req.headers.authorization);
      const serverId = req.params.id;
      if (!ctx.store.getServer(serverId)) throw new SedfsError('SEDFS_ERR_UNKNOWN_SERVER');
      ctx.store.beginInventory(serverId);
      let batch: string[] = [];
      let reported = 0;
      let rest = '';
      for await (const piece of req.raw) {
        const lines = (rest + (piece as Buffer).toString('latin1')).split('\n');
        rest = lines.pop() as string;
        if (rest.length > 64) throw new SedfsError('SEDFS_ERR_BAD_CHUNK_ID', 'inventory line too long');
        for (const line of lines) {
          if (line === '') continue;
          if (!isChunkId(line))
            throw new SedfsError('SEDFS_ERR_BAD_CHUNK_ID', 'inventory holds a malformed chunk id');
          batch.push(line);
          if (batch.length === BATCH) {
            ctx.store.addInventory(serverId, batch);
            reported += batch.length;
            batch = [];
          }
        }
      }
      if (rest !== '') {
        if (!isChunkId(rest))
          throw new SedfsError('SEDFS_ERR_BAD_CHUNK_ID', 'inventory holds a malformed chunk id');
        batch.push(rest);
      }
      ctx.store.addInventory(serverId, batch);
      reported += batch.length;
      const diff = ctx.store.finishInventory(serverId, LOG_SAMPLE);
      // What is missing now shows as under-replicated: start restoring it.
      if (diff.missingCount > 0) ctx.repairer.kick();
      const line = { server: serverId, reported, missing: diff.missingCount, extra: diff.extraCount };
      if (diff.missingCount + diff.extraCount === 0) ctx.log.info(line, 'inventory matches');
      else
        ctx.log.warn(
          { ...line, missingIds: diff.missing, extraIds: diff.extra },
          'inventory differs from what main expects',
        );
      return { reported, missing: diff.missingCount, extra: diff.extraCount };
    },
  );
}
