import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  X509Certificate,
} from 'node:crypto';

/**
 * Certificate facts and TLS keys with node:crypto alone, so clients never load the X.509
 * encoder (cluster-ca.ts) that only main needs to issue certificates.
 */
export interface KeyPairPem {
  keyPem: string;
  publicKeyPem: string;
}

/** A new P-256 key pair for a TLS endpoint (PKCS#8 and SPKI PEM). */
export function generateTlsKey(): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

/** The public half of a private key, as generateTlsKey gives it. */
export function publicKeyOf(keyPem: string): string {
  return createPublicKey(keyPem).export({ format: 'pem', type: 'spki' }).toString();
}

/** SHA-256 of the certificate's DER encoding, 64 lowercase hex characters. */
export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256.replaceAll(':', '').toLowerCase();
}

/**
 * SHA-256 of a P-256 public key's SPKI DER encoding, 64 lowercase hex characters; throws
 * for anything else (the only keys the cluster CA certifies).
 */
export function publicKeyFingerprint(publicKeyPem: string): string {
  return spkiFingerprint(createPublicKey(publicKeyPem));
}

/** `publicKeyFingerprint` of the key a DER certificate certifies. */
export function certifiedKeyFingerprint(certDer: Buffer): string {
  return spkiFingerprint(new X509Certificate(certDer).publicKey);
}

function spkiFingerprint(key: KeyObject): string {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new Error('not a P-256 public key');
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** Whether `text` looks like a fingerprint as `fingerprintOf` writes it (colons and case forgiven). */
export function normalizeFingerprint(text: string): string | undefined {
  const hex = text.replaceAll(':', '').trim().toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

export interface CertificateFacts {
  commonName: string;
  serial: string;
  notBefore: number;
  notAfter: number;
}

export function certificateFacts(certPem: string): CertificateFacts {
  const c = new X509Certificate(certPem);
  return {
    commonName: /CN=([^\n,]+)/.exec(c.subject)?.[1] ?? '',
    serial: c.serialNumber.toLowerCase(),
    notBefore: Date.parse(c.validFrom),
    notAfter: Date.parse(c.validTo),
  };
}

/** True when `certPem` was signed by the CA in `caPem` and is valid at `now`. */
export function issuedBy(certPem: string, caPem: string, now = Date.now()): boolean {
  const cert = new X509Certificate(certPem);
  const ca = new X509Certificate(caPem);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}

/** True when `keyPem` is the private key of the certificate's public key. */
export function certifiesKey(certPem: string, keyPem: string): boolean {
  return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
}

/**
 * The cluster CA dates a certificate a minute back (clocks differ a little). That minute
 * is not part of the life renewal counts in: counted, a certificate of under ~46 s was
 * due from its start and renewed only after it had expired.
 */
export const CERT_BACKDATE_MS = 60_000;

/** The life a certificate was issued for, without the minute it is dated back. */
export function issuedLife(v: { notBefore: number; notAfter: number }): number {
  return Math.max(0, v.notAfter - v.notBefore - CERT_BACKDATE_MS);
}

/** Less than a third of the certificate's life is left: time to replace it. */
export function renewalDue(certPem: string, now = Date.now()): boolean {
  return validityRenewalDue(certificateFacts(certPem), now);
}

/** `renewalDue` from a certificate's validity dates (ms since epoch). */
export function validityRenewalDue(v: { notBefore: number; notAfter: number }, now = Date.now()): boolean {
  return v.notAfter - now <= issuedLife(v) / 3;
}
