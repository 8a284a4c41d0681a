import type { FastifyInstance } from 'fastify';
import { SedfsError } from '../../protocol/errors.js';
import type { RotateJoinTokenResponse } from '../../protocol/main-api.js';
import { type MainContext, requireUser } from '../context.js';

/**
 * (admin) Replaces the cluster join token, say after it leaked: the old one gets no new
 * server a certificate from now on. Servers already enrolled renew with their
 * certificates, so none is cut off. The answer is the new join string for new servers.
 */
export function rotateJoinTokenRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post('/v1/join-token/rotate', { bodyLimit: 1024 }, async (req): Promise<RotateJoinTokenResponse> => {
    const user = requireUser(ctx, req);
    if (!user.admin) throw new SedfsError('SEDFS_ERR_ADMIN_ONLY');
    if (!ctx.tls)
      throw new SedfsError(
        'SEDFS_ERR_BAD_REQUEST',
        "this cluster runs without TLS (--insecure-http), where the join token is every file server's only credential: restart main and its file servers with a new --join-token",
      );
    // Main publishes its join string a moment after it starts listening.
    if (!ctx.joinToken.joinString) throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'main is still starting');
    const join = (await ctx.joinToken.rotate()) as string;
    ctx.log.warn({ by: user.id }, 'join token rotated: new file servers need the new join string');
    return { join };
  });
}
