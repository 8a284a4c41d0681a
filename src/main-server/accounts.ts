import type { Logger } from '../common/logger.js';
import { randomHexId, randomSecret, sha256Hex } from '../crypto/hash.js';
import { verifySignature } from '../crypto/identity.js';
import type {
  ChallengeResponse,
  InviteResponse,
  LoginRequest,
  LoginResponse,
  SignupRequest,
  UserInfo,
} from '../protocol/account-api.js';
import { loginMessage, signupMessage } from '../protocol/account-messages.js';
import { SedfsError } from '../protocol/errors.js';
import type { AuditLog } from './audit.js';
import type { NamespaceStore, UserRecord } from './store/namespace-store.js';

export interface AccountOptions {
  openSignup: boolean;
  sessionTtlMs: number;
  inviteTtlMs: number;
}

const CHALLENGE_TTL_MS = 60_000;
const MAX_PENDING_CHALLENGES = 10_000;

/**
 * Users and sessions. A user proves their key by signing a one-time challenge and gets
 * a session token; main stores only the token's hash, so a stolen database holds no
 * usable session. The first account is the admin; later ones need an invite unless
 * signup is open.
 */
export class AccountService {
  /** One-time login challenges; in memory, since a restart only means logging in again. */
  private readonly challenges = new Map<string, { name: string; expiresAt: number }>();

  constructor(
    private readonly store: NamespaceStore,
    private readonly log: Logger,
    private readonly audit: AuditLog,
    private readonly now: () => number,
    private readonly opts: AccountOptions,
  ) {}

  signup(req: SignupRequest): UserInfo {
    if (
      !verifySignature(
        req.signKey,
        Buffer.from(signupMessage(req.name, req.signKey, req.boxKey)),
        req.signature,
      )
    ) {
      throw new SedfsError('SEDFS_ERR_LOGIN_FAILED', 'the signup is not signed by the key it registers');
    }
    const now = this.now();
    const first = this.store.countUsers() === 0;
    const user: UserRecord = {
      id: randomHexId(),
      name: req.name,
      signKey: req.signKey,
      boxKey: req.boxKey,
      admin: first,
      rootId: req.rootId,
      rootSealed: req.rootSealed,
      createdAt: now,
    };
    const home = {
      id: req.rootId,
      ownerId: user.id,
      parentId: null,
      kind: 'dir' as const,
      nameMac: null,
      nameEnc: null,
      wrappedKey: null,
      versionId: null,
      size: 0,
      createdAt: now,
      modifiedAt: now,
    };
    if (this.store.userByName(req.name)) throw new SedfsError('SEDFS_ERR_USER_EXISTS');
    const needsInvite = !first && !this.opts.openSignup;
    if (needsInvite && !req.invite) throw new SedfsError('SEDFS_ERR_INVITE_REQUIRED');
    this.store.createUser(user, home, needsInvite ? sha256Hex(req.invite as string) : undefined);
    this.log.info({ user: user.id, admin: user.admin }, 'user signed up');
    return { id: user.id, name: user.name, admin: user.admin };
  }

  challenge(name: string): ChallengeResponse {
    // Unknown names get a challenge too: whether a user exists is not told here.
    const now = this.now();
    if (this.challenges.size >= MAX_PENDING_CHALLENGES) {
      for (const [k, v] of this.challenges) if (v.expiresAt <= now) this.challenges.delete(k);
      if (this.challenges.size >= MAX_PENDING_CHALLENGES) this.challenges.clear();
    }
    const challenge = randomSecret(32);
    const expiresAt = now + CHALLENGE_TTL_MS;
    this.challenges.set(challenge, { name, expiresAt });
    return { challenge, expiresAt };
  }

  login(req: LoginRequest): LoginResponse {
    const pending = this.challenges.get(req.challenge);
    this.challenges.delete(req.challenge);
    const user = this.store.userByName(req.name);
    const now = this.now();
    const valid =
      pending !== undefined &&
      pending.name === req.name &&
      pending.expiresAt > now &&
      user !== undefined &&
      verifySignature(user.signKey, Buffer.from(loginMessage(req.name, req.challenge)), req.signature);
    if (!valid || !user) {
      this.log.warn({ user: user?.id }, 'failed login');
      this.audit.write({ event: 'login_failed', ...(user ? { user: user.id } : {}) });
      throw new SedfsError('SEDFS_ERR_LOGIN_FAILED');
    }
    const token = randomSecret(32);
    const expiresAt = now + this.opts.sessionTtlMs;
    this.store.createSession(sha256Hex(token), user.id, now, expiresAt);
    this.log.info({ user: user.id }, 'login');
    this.audit.write({ event: 'login', user: user.id });
    return { token, expiresAt, user: { id: user.id, name: user.name, admin: user.admin } };
  }

  /** The user behind a bearer token; 401 with a code that says what to do otherwise. */
  authenticate(authorization: string | undefined): UserRecord {
    const token = authorization?.startsWith('Bearer ') ? authorization.slice(7) : '';
    if (!token) throw new SedfsError('SEDFS_ERR_SESSION_REQUIRED');
    const user = this.store.sessionUser(sha256Hex(token), this.now());
    if (!user) {
      this.audit.write({ event: 'auth_failed' });
      throw new SedfsError('SEDFS_ERR_SESSION_EXPIRED');
    }
    return user;
  }

  logout(authorization: string | undefined): void {
    const token = authorization?.startsWith('Bearer ') ? authorization.slice(7) : '';
    if (token) this.store.deleteSession(sha256Hex(token));
  }

  invite(by: UserRecord): InviteResponse {
    if (!by.admin) throw new SedfsError('SEDFS_ERR_ADMIN_ONLY');
    const code = randomSecret(18);
    const now = this.now();
    const expiresAt = now + this.opts.inviteTtlMs;
    this.store.createInvite(sha256Hex(code), by.id, now, expiresAt);
    this.log.info({ by: by.id }, 'invite created');
    return { code, expiresAt };
  }
}
