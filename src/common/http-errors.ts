import { isErrorCode, SedfsError } from '../protocol/errors.js';
import { NOT_EXPECTED_SERVER_CERT, NOT_MAIN_CERT } from './tls.js';

/**
 * What an HTTP client of a SEDFS server makes of a failure, whichever client it is
 * (undici's for servers and uploads, node:https's for the CLI's calls to main, the
 * chunk reader's own): kept apart from them, so that loading one loads none of the others.
 */

/** OpenSSL's codes for a certificate that does not chain to the trusted CA or does not fit. */
const CERT_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  NOT_MAIN_CERT,
  NOT_EXPECTED_SERVER_CERT,
]);

/** Turns a network failure into the error callers branch on. */
export function unreachable(url: string, err: unknown): SedfsError {
  const code = (err as { code?: string }).code ?? (err as Error).message;
  if (CERT_ERRORS.has(code))
    return new SedfsError(
      'SEDFS_ERR_UNTRUSTED_SERVER',
      `${new URL(url).origin} showed a certificate the cluster's CA did not issue for it (${code}); it is not the server you trust`,
      { url },
      { cause: err },
    );
  return new SedfsError(
    'SEDFS_ERR_UNREACHABLE',
    `cannot reach ${new URL(url).origin} (${code})`,
    { url },
    {
      cause: err,
    },
  );
}

/** A SEDFS server's error answer (`{ error: { code, message, details } }`) as a SedfsError. */
export function errorFromBody(
  status: number,
  body: unknown,
  url: string,
  /** what the answer's headers said, added to the details */
  fromHeaders: Record<string, unknown> = {},
): SedfsError {
  const err = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)
    ?.error;
  if (err && isErrorCode(err.code)) {
    return new SedfsError(err.code, typeof err.message === 'string' ? err.message : undefined, {
      ...(err.details as Record<string, unknown> | undefined),
      ...fromHeaders,
      status,
      url,
    });
  }
  return new SedfsError('SEDFS_ERR_INTERNAL', `unexpected HTTP ${status} from ${new URL(url).origin}`, {
    status,
    url,
  });
}

/** An answer that should have been JSON and is not: a proxy's or another program's page, most likely. */
export function notJson(url: string, status: number, type: string | string[] | undefined): SedfsError {
  return new SedfsError(
    'SEDFS_ERR_BAD_ANSWER',
    `${new URL(url).origin} answered HTTP ${status} with something that is not JSON (${type ?? 'no content type'}); is it a SEDFS server?`,
    { url, status },
  );
}
