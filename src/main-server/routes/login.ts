import type { FastifyInstance } from 'fastify';
import { LoginRequest, type LoginResponse } from '../../protocol/account-api.js';
import type { MainContext } from '../context.js';

/** Exchanges a signed challenge for a session token that expires. */
export function loginRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Body: LoginRequest }>(
    '/v1/sessions',
    { schema: { body: LoginRequest }, bodyLimit: 2048 },
    async (req): Promise<LoginResponse> => ctx.accounts.login(req.body),
  );
}
