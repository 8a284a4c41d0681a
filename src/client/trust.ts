import { fingerprintOf } from '../crypto/certificates.js';
import { SedfsError } from '../protocol/errors.js';
import type { CaResponse } from '../protocol/main-api.js';
import { MainCalls } from './main-calls.js';

/** The cluster CA a client trusts for one main server. */
export interface Trust {
  fingerprint: string;
  ca: string;
}

/**
 * Decides which CA to trust for `mainUrl`: the one already trusted (if it matches a
 * fingerprint given now), else main's own, fetched over a connection nothing vouches
 * for yet and accepted only if its fingerprint is the one given, or, with none given,
 * on first use (`firstUse` tells the caller to show the fingerprint). Every later
 * connection then verifies certificates against that CA alone.
 */
export async function establishTrust(
  mainUrl: string,
  pinned: string | undefined,
  known: Trust | undefined,
): Promise<Trust & { firstUse: boolean; changed: boolean }> {
  if (known && (!pinned || pinned === known.fingerprint))
    return { ...known, firstUse: false, changed: false };
  const unverified = new MainCalls(mainUrl, 'unverified');
  let ca: string;
  try {
    ca = (await unverified.call<CaResponse>('GET', '/v1/ca')).ca;
  } finally {
    unverified.close();
  }
  const fingerprint = fingerprintOf(ca);
  if (pinned && fingerprint !== pinned)
    throw new SedfsError(
      'SEDFS_ERR_CA_MISMATCH',
      `main at ${mainUrl} has CA fingerprint ${fingerprint}, not the ${pinned} you gave: refusing to talk to it`,
    );
  return { fingerprint, ca, firstUse: !pinned, changed: known !== undefined };
}
