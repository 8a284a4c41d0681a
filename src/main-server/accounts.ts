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
  /** login challenges pending at once, across all names, before new ones are refused (memory's bound) */
  maxPendingChallenges?: number;
}

const CHALLENGE_TTL_MS = 60_000;
/**
 * Challenges pending per user name: a few logins at once (several terminals) each get
 * theirs; asking for more drops that name's oldest, so asking for one name's challenges
 * never touches another name's.
 */
const CHALLENGES_PER_NAME = 4;
/** A few tens of MB of challenges at most; only a flood of names reaches it, and then only new logins wait. */
const MAX_PENDING_CHALLENGES = 100_000;

/**
 * Users and sessions. A user proves their key by signing a one-time challenge and gets
 * a session token; main stores only the token's hash, so a stolen database holds no
 * usable session. The first account is the admin; later ones need an invite unless
 * signup is open.
 */
export class AccountService {
  /**
   * One-time login challenges; in memory, since a restart only means logging in again.
   * In the order they were made, which (one TTL for all) is the order they expire in.
   */
  private readonly challenges = new Map<string, { name: string; expiresAt: number }>();
  /** Each name's pending challenges, oldest first. */
  private readonly challengesByName = new Map<string, string[]>();

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
    // Without an invite where one is needed, nothing is said about the name: whether a
    // user exists is told only to someone who could sign up (see createUser).
    const needsInvite = !first && !this.opts.openSignup;
    if (needsInvite && !req.invite) throw new SedfsError('SEDFS_ERR_INVITE_REQUIRED');
    this.store.createUser(user, home, needsInvite ? sha256Hex(req.invite as string) : undefined);
    this.log.info({ user: user.id, admin: user.admin }, 'user signed up');
    return { id: user.id, name: user.name, admin: user.admin };
  }

  /**
   * A one-time challenge for `name`. Pending ones are bounded per name (the oldest is
   * dropped) and expire by age; a flood of names fills memory only up to a cap, past
   * which new challenges are refused (429) until old ones expire: pending challenges,
   * a real user's among them, are never thrown away for others' sake.
   */
  challenge(name: string): ChallengeResponse {
    // Unknown names get a challenge too: whether a user exists is not told here.
    const now = this.now();
    this.expireChallenges(now);
    const mine = this.challengesByName.get(name) ?? [];
    if (mine.length >= CHALLENGES_PER_NAME) this.forgetChallenge(mine[0] as string);
    else if (this.challenges.size >= (this.opts.maxPendingChallenges ?? MAX_PENDING_CHALLENGES)) {
      this.log.warn({ pending: this.challenges.size }, 'login challenge refused: too many pending');
      throw new SedfsError('SEDFS_ERR_BUSY', 'too many logins are in progress: try again in a minute');
    }
    const challenge = randomSecret(32);
    const expiresAt = now + CHALLENGE_TTL_MS;
    this.challenges.set(challenge, { name, expiresAt });
    this.challengesByName.set(name, [...(this.challengesByName.get(name) ?? []), challenge]);
    return { challenge, expiresAt };
  }

  /** Drops expired challenges: they sit at the head of the map, so this costs what it drops. */
  private expireChallenges(now: number): void {
    for (const [challenge, pending] of this.challenges) {
      if (pending.expiresAt > now) return;
      this.forgetChallenge(challenge);
    }
  }

  private forgetChallenge(challenge: string): void {
    const pending = this.challenges.get(challenge);
    if (!pending) return;
    this.challenges.delete(challenge);
    const left = (this.challengesByName.get(pending.name) ?? []).filter((c) => c !== challenge);
    if (left.length > 0) this.challengesByName.set(pending.name, left);
    else this.challengesByName.delete(pending.name);
  }

  login(req: LoginRequest): LoginResponse {
    const pending = this.challenges.get(req.challenge);
    this.forgetChallenge(req.challenge);
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
