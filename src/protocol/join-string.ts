import { SedfsError } from './errors.js';

/**
 * Everything a file server needs to join, in one string main writes to `<data>/join`:
 * `sedfs://TOKEN@HOST:PORT#FINGERPRINT` (the join token, main's address, and the
 * SHA-256 fingerprint of the cluster CA).
 */
export interface JoinInfo {
  mainUrl: string;
  joinToken: string;
  caFingerprint: string;
}

export function formatJoinString(info: JoinInfo): string {
  return `sedfs://${info.joinToken}@${new URL(info.mainUrl).host}#${info.caFingerprint}`;
}

export function parseJoinString(text: string): JoinInfo {
  const m = /^sedfs:\/\/([A-Za-z0-9_-]+)@([^/#\s]+)#([0-9a-fA-F:]+)$/.exec(text.trim());
  const fingerprint = m?.[3]?.replaceAll(':', '').toLowerCase();
  if (!m || !fingerprint || !/^[0-9a-f]{64}$/.test(fingerprint))
    throw new SedfsError('SEDFS_ERR_CONFIG', 'a join string looks like sedfs://TOKEN@HOST:PORT#FINGERPRINT');
  return { joinToken: m[1] as string, mainUrl: `https://${m[2]}`, caFingerprint: fingerprint };
}
