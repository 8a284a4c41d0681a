import type { IncomingMessage } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../common/logger.js';
import { peerKey, peerName } from '../common/tls.js';
import type { TicketSigner } from '../crypto/tickets.js';
import { SedfsError } from '../protocol/errors.js';
import type { AccountService } from './accounts.js';
import type { BlobService } from './blob-service.js';
import type { BodyBudget } from './body-budget.js';
import type { JoinToken } from './join-token.js';
import type { MainTls } from './main-tls.js';
import type { NamespaceService } from './namespace.js';
import type { Reconciler } from './reconciler.js';
import type { Registry } from './registry.js';
import type { Repairer } from './repairer.js';
import type { StorageAuditor } from './storage-auditor.js';
import type { NamespaceStore, UserRecord } from './store/namespace-store.js';
import type { MainStore } from './store/store.js';

/** What main's routes are handed: domain services, never a request object going the other way. */
export interface MainContext {
  store: MainStore;
  registry: Registry;
  blobs: BlobService;
  accounts: AccountService;
  namespace: NamespaceService;
  namespaceStore: NamespaceStore;
  repairer: Repairer;
  auditor: StorageAuditor;
  reconciler: Reconciler;
  signer: TicketSigner;
  log: Logger;
  joinToken: JoinToken;
  heartbeatIntervalMs: number;
  /** bytes of big request bodies main reads at once (see `bodyWithinBudget`) */
  bodies: BodyBudget;
  /** absent only with --insecure-http */
  tls: MainTls | undefined;
}

/**
 * A file server speaking for itself. Over TLS that is a certificate from the cluster CA
 * naming this very server: the join token only gets a server its first certificate, so
 * rotating the token cuts off no server already enrolled. Without TLS the join token is
 * all there is. A removed server is refused either way.
 */
export function requireServer(
  ctx: MainContext,
  req: { headers: { authorization?: string | undefined }; raw: IncomingMessage },
  serverId: string,
): void {
  if (!ctx.tls) requireJoinToken(ctx, req.headers.authorization);
  else if (peerName(req.raw) !== serverId) throw new SedfsError('SEDFS_ERR_CLIENT_CERT');
  else requireBoundKey(ctx, req.raw, serverId);
  if (ctx.store.getServer(serverId)?.removedAt) throw new SedfsError('SEDFS_ERR_SERVER_REMOVED');
}

/**
 * The key the peer's certificate certifies must be the one its server id is bound to.
 * An id enrolled before ids were bound to keys is bound here, at its first request.
 */
export function requireBoundKey(ctx: MainContext, raw: IncomingMessage, serverId: string): void {
  const key = peerKey(raw);
  if (!key) throw new SedfsError('SEDFS_ERR_CLIENT_CERT');
  // One read per request (heartbeats come every few seconds); a write only the first time.
  const bound = ctx.store.enrolledKey(serverId);
  if (bound === undefined) ctx.store.recordEnrolment(serverId, key, Date.now());
  else if (bound !== key) throw new SedfsError('SEDFS_ERR_SERVER_KEY_MISMATCH');
}

/** File servers prove cluster membership with the join token as a bearer credential. */
export function requireJoinToken(ctx: MainContext, authorization: string | undefined): void {
  const token = authorization?.startsWith('Bearer ') ? authorization.slice(7) : '';
  if (!ctx.joinToken.matches(token)) throw new SedfsError('SEDFS_ERR_JOIN_TOKEN');
}

/** The signed-in user behind a request; every client route starts here. */
export function requireUser(
  ctx: MainContext,
  req: { headers: { authorization?: string | undefined } },
): UserRecord {
  let user = signedIn.get(req);
  if (!user) {
    user = ctx.accounts.authenticate(req.headers.authorization);
    signedIn.set(req, user);
  }
  return user;
}

/** Users already authenticated per request (see `userBeforeBody`): one session lookup each. */
const signedIn = new WeakMap<object, UserRecord>();

/**
 * An `onRequest` hook for routes that take big bodies (megabytes of commits or rekeyed
 * grants): the caller is checked as soon as the headers are in, so a stranger is
 * turned away before Fastify reads and parses the body, not after it has been held in
 * memory. The handler's own `requireUser` finds the user already known.
 */
export function userBeforeBody(ctx: MainContext): (req: FastifyRequest) => Promise<void> {
  return async (req) => {
    requireUser(ctx, req);
  };
}

/**
 * As `userBeforeBody`, and the caller must own the node the URL names (`:id`): anyone
 * else is turned away before main reads a byte of the body, so a big body (a key
 * rotation's part) costs main memory and parsing only for the owner's own tree.
 */
export function ownerBeforeBody(ctx: MainContext, op: string): (req: FastifyRequest) => Promise<void> {
  return async (req) => {
    const user = requireUser(ctx, req);
    const id = (req.params as { id: string }).id;
    // Not a node id at all: refused as the schema would, without an audit line for it.
    if (!/^[0-9a-f]{32}$/.test(id)) throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'not a node id');
    ctx.namespace.authorize(user, id, 'owner', op);
  };
}

/**
 * As `userBeforeBody`, and the upload the URL names (`:id`) must be the caller's own and
 * open: a commit body (up to 64 MiB of receipts) is read only for its uploader.
 */
export function uploaderBeforeBody(ctx: MainContext): (req: FastifyRequest) => Promise<void> {
  return async (req) => {
    const user = requireUser(ctx, req);
    const upload = ctx.store.getUpload((req.params as { id: string }).id, Date.now());
    if (!upload || upload.userId !== user.id) throw new SedfsError('SEDFS_ERR_UPLOAD_NOT_FOUND');
  };
}

/**
 * An `onRequest` hook, after the one that checks the caller, for routes whose bodies may
 * be megabytes (commits, key rotations): the body is read only if the bytes it declares
 * fit in main's budget for such bodies (`BodyBudget`), else it is refused before it is
 * read, 503 `SEDFS_ERR_BUSY`. Without a `content-length` (a chunked body) it counts as
 * the route's whole limit. The bytes are given back when the answer is sent or the
 * connection ends, whichever comes first: a finished, failed or abandoned request alike;
 * a body that has not arrived by its deadline (`BodyBudget.deadlineMs`) is cut off.
 */
export function bodyWithinBudget(
  ctx: MainContext,
  limit: number,
): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
  return async (req, reply) => {
    const user = requireUser(ctx, req);
    const declared = Number(req.headers['content-length']);
    // Refused unread here, not as busy: a busy answer lets Node read and drop the whole
    // body, whatever size it declares (a terabyte, or for ever).
    if (Number.isSafeInteger(declared) && declared > limit)
      throw new SedfsError(
        'SEDFS_ERR_BODY_TOO_LARGE',
        `the body declares ${declared} bytes; at most ${limit} are read`,
      );
    const bytes = Number.isSafeInteger(declared) && declared >= 0 ? declared : limit;
    const release = ctx.bodies.take(user.id, bytes);
    // A body that stops coming is cut off at its deadline: its connection closes, and
    // with it the request, so its bytes are given back.
    const late = setTimeout(() => {
      if (req.raw.complete) return;
      ctx.bodies.noteCutOff(user.id, bytes);
      req.raw.destroy();
    }, ctx.bodies.deadlineMs(bytes));
    late.unref();
    reply.raw.once('close', () => {
      clearTimeout(late);
      release();
    });
  };
}

/** As `userBeforeBody`, for a file server's own routes (`/v1/servers/:id/...`). */
export function serverBeforeBody(ctx: MainContext): (req: FastifyRequest) => Promise<void> {
  return async (req) => {
    requireServer(ctx, req, (req.params as { id: string }).id);
  };
}
