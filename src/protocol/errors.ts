/**
 * The one list of error codes. Callers branch on `code`, never on message text.
 * Each code carries its HTTP status and whether retrying the same request may succeed.
 */
export const ERRORS = {
  SEDFS_ERR_BAD_REQUEST: { status: 400, retryable: false, message: 'the request is malformed' },
  SEDFS_ERR_BAD_CHUNK_ID: {
    status: 400,
    retryable: false,
    message: 'a chunk id must be 64 lowercase hex characters',
  },
  SEDFS_ERR_BODY_REQUIRED: { status: 411, retryable: false, message: 'a content-length header is required' },
  SEDFS_ERR_BODY_TOO_LARGE: { status: 413, retryable: false, message: 'the request body is too large' },
  SEDFS_ERR_UNSUPPORTED_MEDIA: { status: 415, retryable: false, message: 'unsupported content type' },
  SEDFS_ERR_HASH_MISMATCH: {
    status: 422,
    retryable: false,
    message: 'the body does not hash to the chunk id',
  },
  SEDFS_ERR_BODY_INCOMPLETE: {
    status: 400,
    retryable: true,
    message: 'the body ended before content-length bytes',
  },
  SEDFS_ERR_TICKET_MISSING: { status: 401, retryable: false, message: 'a ticket is required' },
  SEDFS_ERR_TICKET_INVALID: {
    status: 401,
    retryable: false,
    message: 'the ticket is malformed or its signature is wrong',
  },
  SEDFS_ERR_TICKET_EXPIRED: { status: 401, retryable: false, message: 'the ticket has expired' },
  SEDFS_ERR_TICKET_MISMATCH: {
    status: 403,
    retryable: false,
    message: 'the ticket does not cover this chunk, operation or server',
  },
  SEDFS_ERR_JOIN_TOKEN: {
    status: 401,
    retryable: false,
    message:
      "a valid cluster join token is required (if it was rotated, main's data folder holds the new join string in `join`)",
  },
  SEDFS_ERR_NOT_FOUND: { status: 404, retryable: false, message: 'not found' },
  SEDFS_ERR_BATCH_FULL: {
    status: 413,
    retryable: true,
    message:
      'this answer holds as many chunks as one may: ask for this file alone (GET /v1/nodes/:id/content)',
  },
  SEDFS_ERR_UNKNOWN_ROUTE: { status: 404, retryable: false, message: 'no such route' },
  SEDFS_ERR_UNKNOWN_SERVER: { status: 404, retryable: false, message: 'this file server is not registered' },
  SEDFS_ERR_CHUNK_NOT_FOUND: { status: 404, retryable: false, message: 'no such chunk on this server' },
  SEDFS_ERR_UPLOAD_NOT_FOUND: { status: 404, retryable: false, message: 'no such upload, or it has expired' },
  SEDFS_ERR_RECEIPT_INVALID: {
    status: 409,
    retryable: false,
    message:
      'a storage receipt is missing, or was not made for this chunk and upload by a server it was placed on',
  },
  SEDFS_ERR_EXISTS: {
    status: 409,
    retryable: false,
    message: 'something with that name already exists there',
  },
  SEDFS_ERR_VERSION_CONFLICT: {
    status: 409,
    retryable: true,
    message: 'the file changed while this upload ran; nothing was overwritten',
  },
  SEDFS_ERR_NOT_A_FOLDER: { status: 409, retryable: false, message: 'not a folder' },
  SEDFS_ERR_IS_A_FOLDER: { status: 409, retryable: false, message: 'is a folder' },
  SEDFS_ERR_NOT_EMPTY: { status: 409, retryable: false, message: 'the folder is not empty (use -r)' },
  SEDFS_ERR_MOVE_INTO_ITSELF: { status: 409, retryable: false, message: 'a folder cannot move into itself' },
  SEDFS_ERR_SESSION_REQUIRED: { status: 401, retryable: false, message: 'log in first (sedfs login USER)' },
  SEDFS_ERR_SESSION_EXPIRED: {
    status: 401,
    retryable: false,
    message: 'your session has expired or ended: log in again (sedfs login USER)',
  },
  SEDFS_ERR_LOGIN_FAILED: {
    status: 401,
    retryable: false,
    message: 'login failed: unknown user or wrong key',
  },
  SEDFS_ERR_USER_EXISTS: { status: 409, retryable: false, message: 'that user name is taken' },
  SEDFS_ERR_INVITE_REQUIRED: {
    status: 403,
    retryable: false,
    message: 'signup needs a valid invite code from an admin (sedfs invite)',
  },
  SEDFS_ERR_FORBIDDEN: { status: 403, retryable: false, message: 'you do not have that permission here' },
  SEDFS_ERR_LOCKED: { status: 423, retryable: true, message: 'locked by another user' },
  SEDFS_ERR_REKEY_PENDING: {
    status: 423,
    retryable: false,
    message: 'an unshare has not finished replacing the keys here (sedfs unshare --finish)',
  },
  SEDFS_ERR_KEYS_INSTALLING: {
    status: 503,
    retryable: true,
    message: 'main is installing new keys here after an unshare: try again in a moment',
  },
  SEDFS_ERR_REKEY_TAKEN_OVER: {
    status: 409,
    retryable: false,
    message: 'another client took this key rotation over: it finishes it',
  },
  SEDFS_ERR_KEY_CHANGED: {
    status: 409,
    retryable: false,
    message: "this user's key is not the one you pinned",
  },
  SEDFS_ERR_ADMIN_ONLY: { status: 403, retryable: false, message: 'only an admin may do that' },
  SEDFS_ERR_JOIN_TOKEN_FIXED: {
    status: 409,
    retryable: false,
    message:
      "the join token is set in main's settings (--join-token, SEDFS_JOIN_TOKEN or --config), not rotated here",
  },
  SEDFS_ERR_SERVER_KEY_MISMATCH: {
    status: 409,
    retryable: false,
    message:
      'this server id enrolled before with another TLS key; a server that lost its key is removed (sedfs admin remove-server ID) and joins again with a new data folder',
  },
  SEDFS_ERR_NOT_READY: {
    status: 503,
    retryable: true,
    message: 'this file server has not joined the cluster yet',
  },
  SEDFS_ERR_NO_SERVERS: { status: 503, retryable: true, message: 'no file server is up' },
  SEDFS_ERR_BUSY: {
    status: 503,
    retryable: true,
    message: 'main is reading as many big request bodies as it may at once: try again shortly',
  },
  SEDFS_ERR_NO_SPACE: {
    status: 507,
    retryable: true,
    message:
      'out of disk space (on a file server: another may take the chunk; on main: free some space there)',
  },
  SEDFS_ERR_REPLICATION_FAILED: {
    status: 502,
    retryable: true,
    message: 'some replicas could not be written',
  },
  SEDFS_ERR_ALL_REPLICAS_FAILED: {
    status: 502,
    retryable: true,
    message: 'no replica of a chunk could be read',
  },
  SEDFS_ERR_UNREACHABLE: { status: 503, retryable: true, message: 'a server could not be reached' },
  SEDFS_ERR_BAD_ANSWER: {
    status: 502,
    retryable: false,
    message: 'a server answered with something that is not a SEDFS answer',
  },
  SEDFS_ERR_UNTRUSTED_SERVER: {
    status: 502,
    retryable: false,
    message: "the server's certificate does not chain to the trusted cluster CA",
  },
  SEDFS_ERR_INSECURE_URL: {
    status: 502,
    retryable: false,
    message: 'a file server was given at a plain http:// URL in a cluster that runs over TLS: refused',
  },
  SEDFS_ERR_CA_MISMATCH: {
    status: 400,
    retryable: false,
    message: "main's certificate authority is not the one whose fingerprint you gave",
  },
  SEDFS_ERR_CLIENT_CERT: {
    status: 401,
    retryable: false,
    message: 'this needs a certificate from the cluster CA, for this server',
  },
  SEDFS_ERR_SERVER_REMOVED: {
    status: 403,
    retryable: false,
    message: 'this file server was removed from the cluster',
  },
  SEDFS_ERR_CORRUPT_CHUNK: { status: 502, retryable: true, message: 'a chunk did not match its id' },
  SEDFS_ERR_DECRYPT: { status: 422, retryable: false, message: 'data could not be decrypted' },
  SEDFS_ERR_BAD_NAME: {
    status: 422,
    retryable: false,
    message: 'a stored name is not one a SEDFS client writes, or not one this system can store',
  },
  SEDFS_ERR_BAD_PASSPHRASE: { status: 401, retryable: false, message: 'wrong passphrase' },
  SEDFS_ERR_CONFIG: { status: 400, retryable: false, message: 'invalid configuration' },
  SEDFS_ERR_INTERNAL: { status: 500, retryable: true, message: 'internal error' },
} as const satisfies Record<string, { status: number; retryable: boolean; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}

/** The error type every layer throws; the HTTP error handler turns it into a response. */
export class SedfsError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message ?? ERRORS[code].message, options);
    this.name = 'SedfsError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.retryable = ERRORS[code].retryable;
    this.details = details;
  }

  toJSON(): ErrorBody {
    return {
      error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) },
    };
  }
}

/** Shape of every error response body on the wire. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
}
