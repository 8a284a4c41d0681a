import type { FastifyInstance } from 'fastify';
import { SedfsError } from '../../protocol/errors.js';
import type { CaResponse } from '../../protocol/main-api.js';
import type { MainContext } from '../context.js';

/**
 * The cluster CA certificate, for anyone: it is public. Whoever fetches it checks its
 * fingerprint against the one they were given (or trusts it on first use) before
 * relying on it.
 */
export function getCaRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get('/v1/ca', async (): Promise<CaResponse> => {
    if (!ctx.tls)
      throw new SedfsError('SEDFS_ERR_NOT_FOUND', 'this cluster runs without TLS (--insecure-http)');
    return { ca: ctx.tls.ca.certPem };
  });
}
