import type { FastifyInstance } from 'fastify';
import { SedfsError } from '../../protocol/errors.js';
import type { CheckResponse } from '../../protocol/main-api.js';
import { type MainContext, requireUser } from '../context.js';

function report(ctx: MainContext): CheckResponse {
  const counted = ctx.registry.counted().map((s) => s.id);
  return {
    servers: ctx.registry.view().map((s) => ({
      id: s.id,
      url: s.url,
      state: s.state,
      chunks: s.chunkCount,
      missing: s.missing,
      extra: s.extra,
    })),
    chunks: ctx.store.countChunks(),
    underReplicated: ctx.store.underReplicated(counted, Number.MAX_SAFE_INTEGER).length,
    repair: { ...ctx.repairer.progress },
  };
}

function requireAdmin(ctx: MainContext, req: { headers: { authorization?: string | undefined } }): void {
  if (!requireUser(ctx, req).admin) throw new SedfsError('SEDFS_ERR_ADMIN_ONLY');
}

/** The cluster's health (admin): servers, missing and extra chunks, under-replication, repair. */
export function checkRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get('/v1/check', async (req): Promise<CheckResponse> => {
    requireAdmin(ctx, req);
    return report(ctx);
  });
  // Runs repair passes until nothing more can be restored, then reports.
  app.post('/v1/check/repair', { bodyLimit: 1024 }, async (req): Promise<CheckResponse> => {
    requireAdmin(ctx, req);
    await ctx.repairer.drain();
    return report(ctx);
  });
}
