import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  LogController,
} from 'fastify';
import { type ErrorCode, SedfsError } from '../protocol/errors.js';
import { isDiskFull } from './files.js';
import { atMostOnceAMinute, type Logger } from './logger.js';
import { peerRenewalDue, TLS_CIPHERS, type TlsIdentity } from './tls.js';

/** Seconds a sender refused with `SEDFS_ERR_BUSY` is told to wait (`Retry-After`). */
export const BUSY_RETRY_AFTER_S = 1;

/**
 * 503s that say what state the cluster is in, not that something broke: told at warn,
 * without a stack (a put over a dead server asks main for other servers, which has none
 * in a cluster of as many servers as replicas).
 */
const STATES = new Set(['SEDFS_ERR_NO_SERVERS', 'SEDFS_ERR_NOT_READY']);

/**
 * Refusals of a request as a whole for now, made before its body is read and said by
 * their thrower already (at most once a minute, or at an install's start and end): told
 * at debug, with Retry-After, the body drained (see the error handler).
 */
const REFUSED_FOR_NOW = new Set(['SEDFS_ERR_BUSY', 'SEDFS_ERR_KEYS_INSTALLING']);

/** Default cap for JSON bodies; routes that need more say so in their own options. */
export const JSON_BODY_LIMIT = 1024 * 1024;

/** Fastify's own errors that are the caller's fault, mapped onto our codes. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'SEDFS_ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'SEDFS_ERR_UNSUPPORTED_MEDIA',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'SEDFS_ERR_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'SEDFS_ERR_BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'SEDFS_ERR_BAD_REQUEST',
};

function toSedfsError(err: FastifyError | SedfsError | Error): SedfsError {
  if (err instanceof SedfsError) return err;
  const fe = err as FastifyError;
  if (fe.validation) return new SedfsError('SEDFS_ERR_BAD_REQUEST', `invalid request: ${fe.message}`);
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) return new SedfsError(mapped, fe.message);
  // A full disk (a file's ENOSPC or EDQUOT; SQLite's SQLITE_FULL, its transaction rolled back).
  if (isDiskFull(err) || fe.code === 'SQLITE_FULL')
    return new SedfsError(
      'SEDFS_ERR_NO_SPACE',
      "this server's disk is full: free space in its data folder",
      undefined,
      { cause: err },
    );
  // JSON.parse failures surface as SyntaxError with a 400 status.
  if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new SedfsError('SEDFS_ERR_BAD_REQUEST', fe.message);
  }
  return new SedfsError('SEDFS_ERR_INTERNAL', undefined, undefined, { cause: err });
}

/**
 * One Fastify instance with the conventions every SEDFS server shares: strict schema
 * validation (no type coercion, unknown properties refused), one error handler that
 * turns every failure into `{error: {code, message}}` with a log line, and raw
 * streaming for `application/octet-stream` bodies (chunk transfers never buffer).
 *
 * With `tls` it serves HTTPS only, asking every peer for a certificate without
 * requiring one (users' clients have none; main and file servers show theirs, and the
 * routes that need one check it). A renewed certificate takes effect for new connections;
 * a connection whose peer's certificate is due for renewal is closed after each answer,
 * so peers move to their renewed certificates long before the old ones expire.
 */
export function createHttpApp(log: Logger, tls?: TlsIdentity): FastifyInstance {
  const app = Fastify({
    serverFactory: (handler) => {
      if (!tls) return createHttpServer(handler);
      const server = createHttpsServer(
        {
          ...tls.serverOptions(),
          requestCert: true,
          rejectUnauthorized: false,
          minVersion: 'TLSv1.2',
          ciphers: TLS_CIPHERS,
          honorCipherOrder: true,
        },
        handler,
      );
      tls.onRenew(() => server.setSecureContext(tls.serverOptions()));
      return server as unknown as ReturnType<typeof createHttpServer>;
    },
    loggerInstance: log as FastifyBaseLogger,
    // Our error handler and onResponse hook log requests; Fastify's own lines would double them.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: JSON_BODY_LIMIT,
    forceCloseConnections: true,
    return503OnClosing: true,
    ajv: {
      customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false },
    },
  });

  // The route reads request.raw itself, with its own size limit and hashing.
  app.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null, undefined));

  // A full disk fails every request that writes: said once a minute, not once each.
  const diskFull = atMostOnceAMinute((refused: number, e: SedfsError) =>
    log.warn(
      { refused, reason: (e.cause as Error | undefined)?.message },
      'out of disk space: requests that write are refused with SEDFS_ERR_NO_SPACE (said at most once a minute, with the number refused)',
    ),
  );
  app.setErrorHandler((err: FastifyError | SedfsError, req, reply) => {
    const e = toSedfsError(err);
    if (e.code === 'SEDFS_ERR_NO_SPACE') {
      // One thrown as such was told already by whoever threw it (a file server's store).
      if (e !== err) diskFull.note(e);
      req.log.debug({ code: e.code, method: req.method, url: req.url, reason: e.message }, 'request refused');
    } else if (REFUSED_FOR_NOW.has(e.code)) {
      // They come in floods, every client trying again.
      req.log.debug({ code: e.code, method: req.method, url: req.url, reason: e.message }, 'request refused');
      reply.header('retry-after', String(BUSY_RETRY_AFTER_S));
    } else if (e.status >= 500 && !STATES.has(e.code))
      req.log.error({ err, code: e.code, method: req.method, url: req.url }, 'request failed');
    else
      req.log.warn({ code: e.code, method: req.method, url: req.url, reason: e.message }, 'request refused');
    // A body we did not read must not be parsed as the next request on this connection.
    // Except a chunk refused for want of space, or a big body main has no room to read
    // now (or a key rotation's part while its keys are installed): Node reads and drops the rest (a chunk or batch is at most --max-chunk-mib, or
    // 16 MiB; a commit 64 MiB), holding none of it, so the sender, often the server before
    // this one in a chain, gets the answer rather than a broken pipe (EPIPE, which it
    // would report as this server being unreachable, and not retry as busy).
    const drained = e.code === 'SEDFS_ERR_NO_SPACE' || REFUSED_FOR_NOW.has(e.code);
    if (!req.raw.complete && !drained) reply.header('connection', 'close');
    return reply.code(e.status).send(e.toJSON());
  });

  app.setNotFoundHandler((req, reply) => {
    const e = new SedfsError('SEDFS_ERR_UNKNOWN_ROUTE', `no route ${req.method} ${req.url.split('?')[0]}`);
    req.log.warn({ code: e.code, method: req.method, url: req.url }, 'request refused');
    return reply.code(e.status).send(e.toJSON());
  });

  if (tls)
    app.addHook('onSend', async (req, reply) => {
      if (peerRenewalDue(req.raw)) reply.header('connection', 'close');
    });

  app.addHook('onResponse', async (req, reply) => {
    req.log.debug(
      { method: req.method, url: req.url, status: reply.statusCode, ms: reply.elapsedTime },
      'request',
    );
  });

  return app;
}

/** Fastify's "listening" line, with the scheme our server factory really serves. */
export function listenText(tls: TlsIdentity | undefined): (address: string) => string {
  return (address) => `listening at ${tls ? address.replace(/^http:/, 'https:') : address}`;
}
