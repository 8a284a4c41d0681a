import type { FastifyInstance } from 'fastify';
import { peerName } from '../../common/tls.js';
import { publicKeyFingerprint } from '../../crypto/certificates.js';
import { SedfsError } from '../../protocol/errors.js';
import { EnrollRequest, type EnrollResponse } from '../../protocol/main-api.js';
import { type MainContext, requireBoundKey, requireJoinToken } from '../context.js';

/**
 * A file server with the join token gets its certificate: signed by the cluster CA,
 * named after its id, for the host main will publish for it. This is the one server
 * route that needs no certificate, since it is how a server gets one; a server that
 * still holds a valid one renews with it alone, so it outlives a rotated join token.
 */
export function enrollServerRoute(app: FastifyInstance, ctx: MainContext): void {
  app.post<{ Body: EnrollRequest }>(
    '/v1/servers/enroll',
    { schema: { body: EnrollRequest }, bodyLimit: 16 * 1024 },
    async (req): Promise<EnrollResponse> => {
      if (!ctx.tls)
        throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'this cluster runs without TLS (--insecure-http)');
      const { id, publicKey, url } = req.body;
      if (peerName(req.raw) === id) requireBoundKey(ctx, req.raw, id);
      else requireJoinToken(ctx, req.headers.authorization);
      if (ctx.store.getServer(id)?.removedAt) throw new SedfsError('SEDFS_ERR_SERVER_REMOVED');
      const host = new URL(ctx.registry.urlFor(url, req.socket.remoteAddress ?? '127.0.0.1', 1)).hostname;
      let key: string;
      try {
        key = publicKeyFingerprint(publicKey);
      } catch {
        throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'publicKey is not a P-256 public key in SPKI PEM');
      }
      // An id is bound to the key it first enrolled with: whoever holds the join token
      // gets no certificate naming a server that already exists. Bound before the
      // certificate is made, so two first enrolments of one id cannot both win.
      ctx.store.recordEnrolment(id, key, Date.now());
      if (ctx.store.enrolledKey(id) !== key) {
        ctx.log.warn({ server: id }, 'enrolment refused: this server id is bound to another key');
        throw new SedfsError('SEDFS_ERR_SERVER_KEY_MISMATCH');
      }
      let cert: string;
      try {
        cert = await ctx.tls.issue(id, publicKey, [host.replace(/^\[|\]$/g, '')]);
      } catch {
        throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'publicKey is not a P-256 public key in SPKI PEM');
      }
      ctx.log.info({ server: id, host }, 'certificate issued to a file server');
      return { cert, ca: ctx.tls.ca.certPem };
    },
  );
}
