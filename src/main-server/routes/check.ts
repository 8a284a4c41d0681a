import type { FastifyInstance } from 'fastify';
import { SedfsError } from '../../protocol/errors.js';
import { CheckRepairRequest, type CheckResponse, type ScrubResult } from '../../protocol/main-api.js';
import { type MainContext, requireUser } from '../context.js';

async function report(ctx: MainContext, verify?: ScrubResult[]): Promise<CheckResponse> {
  const queue = await ctx.repairer.countQueue();
  const records = new Map(ctx.store.listServers().map((s) => [s.id, s]));
  return {
    servers: ctx.registry.view().map((s) => ({
      id: s.id,
      url: s.url,
      state: s.state,
      chunks: s.chunkCount,
      missing: s.missing,
      extra: s.extra,
      corrupt: records.get(s.id)?.corruptCount ?? 0,
      inventoryAt: records.get(s.id)?.inventoryAt ?? 0,
      audits: ctx.auditor.tally(s.id),
    })),
    ...queue,
    surplus: ctx.store.countSurplus(),
    repair: { ...ctx.repairer.progress },
    ...(verify ? { verify } : {}),
  };
}

function requireAdmin(ctx: MainContext, req: { headers: { authorization?: string | undefined } }): void {
  if (!requireUser(ctx, req).admin) throw new SedfsError('SEDFS_ERR_ADMIN_ONLY');
}

/** The cluster's health (admin): servers, missing, extra and corrupt chunks, repair. */
export function checkRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get('/v1/check', async (req): Promise<CheckResponse> => {
    requireAdmin(ctx, req);
    return report(ctx);
  });
  // Optionally re-hashes everything, then compares every live server's full inventory,
  // then repairs until nothing more can be restored, and reports.
  app.post<{ Body: CheckRepairRequest }>(
    '/v1/check/repair',
    { schema: { body: CheckRepairRequest }, bodyLimit: 1024 },
    async (req): Promise<CheckResponse> => {
      requireAdmin(ctx, req);
      ctx.log.info({ verify: req.body.verify === true }, 'check and repair asked for');
      const verify = req.body.verify ? await ctx.reconciler.verifyAll() : undefined;
      await ctx.reconciler.pullAll();
      await ctx.repairer.drain();
      return report(ctx, verify);
    },
  );
}
