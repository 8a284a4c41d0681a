import type { FastifyInstance } from 'fastify';
import type { InviteResponse } from '../../protocol/account-api.js';
import { type MainContext, requireUser } from '../context.js';

export function createInviteRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post(
    '/v1/invites',
    { bodyLimit: 1024 },
    async (req): Promise<InviteResponse> => ctx.accounts.invite(requireUser(ctx, req)),
  );
}
