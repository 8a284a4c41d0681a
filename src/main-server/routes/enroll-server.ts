import { isIP } from 'node:net';
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
      const ownCertificate = peerName(req.raw) === id;
      if (ownCertificate) requireBoundKey(ctx, req.raw, id);
      else requireJoinToken(ctx, req.headers.authorization);
      const known = ctx.store.getServer(id);
      if (known?.removedAt) throw new SedfsError('SEDFS_ERR_SERVER_REMOVED');
      // A server registered over TLS before ids were bound to keys (an older version) has
      // no binding yet: it binds its own key with its own certificate (`requireBoundKey`).
      // The join token binds only ids no one holds: it would hand that server's id, and
      // its copies, to whoever has the token. One that only ever ran on plain HTTP (an
      // http:// URL) had no key and no credential but the token: it binds as a new one.
      // (An http:// URL recorded by an old version for a server that ran on TLS binds so
      // too: nothing old versions recorded tells it from one that ran on plain HTTP, not
      // even the time, since a cluster with its CA may have run on --insecure-http.)
      if (
        !ownCertificate &&
        known &&
        !known.url.startsWith('http://') &&
        ctx.store.enrolledKey(id) === undefined
      ) {
        ctx.log.warn(
          { server: id },
          'enrolment refused: this server id was registered before ids were bound to keys, and only its own certificate binds it',
        );
        throw new SedfsError(
          'SEDFS_ERR_SERVER_KEY_MISMATCH',
          `server ${id.slice(0, 8)} was registered before ids were bound to keys: it binds its key by enrolling with its own certificate (start it while that is valid); if that has expired, remove it (sedfs admin remove-server ID) and join it anew with an empty data folder`,
        );
      }
      const host = certificateHost(ctx.registry.urlFor(url, req.socket.remoteAddress ?? '127.0.0.1', 1));
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
        cert = await ctx.tls.issue(id, publicKey, [host]);
      } catch {
        throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'publicKey is not a P-256 public key in SPKI PEM');
      }
      ctx.log.info({ server: id, host }, 'certificate issued to a file server');
      return { cert, ca: ctx.tls.ca.certPem };
    },
  );
}

/** A DNS name: dot-separated labels of letters, digits, underscores (container names) and inner hyphens. */
const DNS_NAME = /^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*$/i;

/**
 * The host a server's certificate will name: an IP address or a plain DNS name. A
 * wildcard (`*.example.com`) or anything else a TLS client might match loosely is
 * refused, so a certificate is good for the one host the server runs on.
 */
function certificateHost(url: string): string {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) === 0 && !DNS_NAME.test(host))
    throw new SedfsError(
      'SEDFS_ERR_BAD_REQUEST',
      'url must name an IP address or a plain DNS name (no wildcards)',
    );
  return host;
}
