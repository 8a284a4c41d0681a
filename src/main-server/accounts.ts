import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
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
import { loginMessage, NO_CLUSTER_CA, signupMessage } from '../protocol/account-messages.js';
import { SedfsError } from '../protocol/errors.js';
import { WINDOWS_DEVICE } from '../protocol/windows-names.js';
import type { AuditLog } from './audit.js';
import type { NamespaceStore, UserRecord } from './store/namespace-store.js';

export interface AccountOptions {
  /** this cluster's CA fingerprint, which logins sign; undefined with --insecure-http */
  caFingerprint?: string | undefined;
  openSignup: boolean;
  sessionTtlMs: number;
  inviteTtlMs: number;
}

const CHALLENGE_TTL_MS = 60_000;
/** A challenge: random nonce, expiry (ms, big-endian), MAC; 32 bytes, as clients expect. */
const CHALLENGE_BYTES = 32;
const CHALLENGE_NONCE_BYTES = 8;
const CHALLENGE_EXPIRY_BYTES = 6;

/**
 * Users and sessions. A user proves their key by signing a one-time challenge and gets
 * a session token; main stores only the token's hash, so a stolen database holds no
 * usable session. The first account is the admin; later ones need an invite unless
 * signup is open.
 */
export class AccountService {
  /**
   * Login challenges are made, not kept: each carries its expiry and a MAC under a key
   * of this process's, over the name it was asked for. Asking for them costs main no
   * memory, so no flood of requests (for other names or for one user's) can push out
   * or refuse anyone's login; a restart only means asking again.
   */
  private readonly challengeKey = randomBytes(32);
  /** Challenges already used to log in, until they expire: each works once. */
  private readonly usedChallenges = new Map<string, number>();

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
    // A client keeps the user's keys in `keys/<name>.json`, which Windows cannot make for a
    // device name: such an account could never be used there.
    if (WINDOWS_DEVICE.test(req.name))
      throw new SedfsError(
        'SEDFS_ERR_BAD_REQUEST',
        `${req.name} is a device name on Windows (con, nul, com1…): choose another user name`,
      );
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

  /** A one-time challenge for `name`; unknown names get one too, so existence is not told. */
  challenge(name: string): ChallengeResponse {
    const expiresAt = this.now() + CHALLENGE_TTL_MS;
    const nonce = randomBytes(CHALLENGE_NONCE_BYTES);
    const when = Buffer.alloc(CHALLENGE_EXPIRY_BYTES);
    when.writeUIntBE(expiresAt, 0, CHALLENGE_EXPIRY_BYTES);
    const challenge = Buffer.concat([nonce, when, this.challengeMac(name, nonce, when)]).toString(
      'base64url',
    );
    return { challenge, expiresAt };
  }

  /** When `challenge` was made by this process for `name` and is still unused, its expiry. */
  private challengeExpiry(name: string, challenge: string): number | undefined {
    const bytes = Buffer.from(challenge, 'base64url');
    // One spelling only (base64url leaves spare bits in its last character), so a used
    // challenge cannot come back spelled otherwise.
    if (bytes.length !== CHALLENGE_BYTES || bytes.toString('base64url') !== challenge) return undefined;
    if (this.usedChallenges.has(challenge)) return undefined;
    const nonce = bytes.subarray(0, CHALLENGE_NONCE_BYTES);
    const when = bytes.subarray(CHALLENGE_NONCE_BYTES, CHALLENGE_NONCE_BYTES + CHALLENGE_EXPIRY_BYTES);
    const mac = bytes.subarray(CHALLENGE_NONCE_BYTES + CHALLENGE_EXPIRY_BYTES);
    if (!timingSafeEqual(mac, this.challengeMac(name, nonce, when))) return undefined;
    const expiresAt = when.readUIntBE(0, CHALLENGE_EXPIRY_BYTES);
    return expiresAt > this.now() ? expiresAt : undefined;
  }

  private challengeMac(name: string, nonce: Buffer, when: Buffer): Buffer {
    return createHmac('sha256', this.challengeKey)
      .update(`sedfs-challenge-v1\n${name}\n`)
      .update(nonce)
      .update(when)
      .digest()
      .subarray(0, CHALLENGE_BYTES - CHALLENGE_NONCE_BYTES - CHALLENGE_EXPIRY_BYTES);
  }

  /** Forgets used challenges once they have expired: in order of use, which is about their order of expiry. */
  private forgetExpiredUses(now: number): void {
    for (const [challenge, expiresAt] of this.usedChallenges) {
      if (expiresAt > now) return;
      this.usedChallenges.delete(challenge);
    }
  }

  login(req: LoginRequest): LoginResponse {
    const now = this.now();
    this.forgetExpiredUses(now);
    const expiresAt = this.challengeExpiry(req.name, req.challenge);
    const user = this.store.userByName(req.name);
    const valid =
      expiresAt !== undefined &&
      user !== undefined &&
      verifySignature(
        user.signKey,
        Buffer.from(loginMessage(req.name, req.challenge, this.opts.caFingerprint ?? NO_CLUSTER_CA)),
        req.signature,
      );
    if (!valid || !user) {
      this.log.warn({ user: user?.id }, 'failed login');
      this.audit.write({ event: 'login_failed', ...(user ? { user: user.id } : {}) });
      throw new SedfsError('SEDFS_ERR_LOGIN_FAILED');
    }
    this.usedChallenges.set(req.challenge, expiresAt as number);
    const token = randomSecret(32);
    const sessionEnds = now + this.opts.sessionTtlMs;
    this.store.createSession(sha256Hex(token), user.id, now, sessionEnds);
    this.log.info({ user: user.id }, 'login');
    this.audit.write({ event: 'login', user: user.id });
    return { token, expiresAt: sessionEnds, user: { id: user.id, name: user.name, admin: user.admin } };
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
