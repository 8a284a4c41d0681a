import type { FastifyInstance } from 'fastify';
import type { MeResponse } from '../../protocol/account-api.js';
import { type MainContext, requireUser } from '../context.js';

/** The signed-in user, with the sealed home-folder key the client opens locally. */
export function meRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get('/v1/me', async (req): Promise<MeResponse> => {
    const u = requireUser(ctx, req);
    return {
      id: u.id,
      name: u.name,
      admin: u.admin,
      signKey: u.signKey,
      boxKey: u.boxKey,
      rootId: u.rootId,
      rootSealed: u.rootSealed,
    };
  });
}
