import type { Logger } from '../common/logger.js';
import { secretsEqual } from '../crypto/hash.js';
import type { TicketSigner } from '../crypto/tickets.js';
import { SedfsError } from '../protocol/errors.js';
import type { AccountService } from './accounts.js';
import type { BlobService } from './blob-service.js';
import type { NamespaceService } from './namespace.js';
import type { Reconciler } from './reconciler.js';
import type { Registry } from './registry.js';
import type { Repairer } from './repairer.js';
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
  reconciler: Reconciler;
  signer: TicketSigner;
  log: Logger;
  joinToken: string;
  heartbeatIntervalMs: number;
}

/** File servers prove cluster membership with the join token as a bearer credential. */
export function requireJoinToken(ctx: MainContext, authorization: string | undefined): void {
  const token = authorization?.startsWith('Bearer ') ? authorization.slice(7) : '';
  if (!token || !secretsEqual(token, ctx.joinToken)) throw new SedfsError('SEDFS_ERR_JOIN_TOKEN');
}

/** The signed-in user behind a request; every client route starts here. */
export function requireUser(
  ctx: MainContext,
  req: { headers: { authorization?: string | undefined } },
): UserRecord {
  return ctx.accounts.authenticate(req.headers.authorization);
}
