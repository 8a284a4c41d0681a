import type { FastifyInstance } from 'fastify';
import { SignupRequest, type UserInfo } from '../../protocol/account-api.js';
import type { MainContext } from '../context.js';

/** Registers a user's public keys and home folder; the first user becomes the admin. */
export function signupRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Body: SignupRequest }>(
    '/v1/users',
    { schema: { body: SignupRequest }, bodyLimit: 16 * 1024 },
    async (req): Promise<UserInfo> => ctx.accounts.signup(req.body),
  );
}
