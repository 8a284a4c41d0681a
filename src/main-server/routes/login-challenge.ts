import type { FastifyInstance } from 'fastify';
import { ChallengeRequest, type ChallengeResponse } from '../../protocol/account-api.js';
import type { MainContext } from '../context.js';

export function loginChallengeRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Body: { name: string } }>(
    '/v1/sessions/challenge',
    { schema: { body: ChallengeRequest }, bodyLimit: 1024 },
    async (req): Promise<ChallengeResponse> => ctx.accounts.challenge(req.body.name),
  );
}
