// tsyringe, inside @peculiar/x509, needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { CERT_BACKDATE_MS, generateTlsKey, publicKeyOf } from './certificates.js';

/**
 * The cluster's own certificate authority. Main makes it at first start (ECDSA P-256)
 * and signs its own certificate and each file server's with it; clients and servers
 * trust exactly this CA, identified by the SHA-256 fingerprint of its certificate.
 * X.509 encoding is @peculiar/x509's; every key and signature comes from node:crypto
 * (its WebCrypto).
 */
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface CaMaterial {
  keyPem: string;
  certPem: string;
}

function pemToDer(pem: string): ArrayBuffer {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const buf = Buffer.from(b64, 'base64');
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

async function importSigningKey(keyPem: string): Promise<webcrypto.CryptoKey> {
  // Through node:crypto first, so a malformed key fails with its clear error.
  const der = createPrivateKey(keyPem).export({ format: 'der', type: 'pkcs8' });
  return await webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign']);
}

async function importPublicKey(publicKeyPem: string): Promise<webcrypto.CryptoKey> {
  return await webcrypto.subtle.importKey('spki', pemToDer(publicKeyPem), EC, true, ['verify']);
}

/** Positive 128-bit random serial numbers, as RFC 5280 asks. */
function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f;
  return b.toString('hex');
}

/**
 * Makes the cluster CA: a self-signed P-256 certificate valid for `years`, for a new key
 * or for `keyPem` (a key a start that crashed before its certificate was written left).
 */
export async function createCa(years = 10, keyPem = generateTlsKey().keyPem): Promise<CaMaterial> {
  const publicKeyPem = publicKeyOf(keyPem);
  const now = Date.now();
  const name = `CN=SEDFS cluster CA ${randomBytes(4).toString('hex')}`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: name,
    issuer: name,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + years * 365 * 24 * 3600_000),
    signingAlgorithm: SIGNING,
    publicKey: await importPublicKey(publicKeyPem),
    signingKey: await importSigningKey(keyPem),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(await importPublicKey(publicKeyPem)),
    ],
  });
  return { keyPem, certPem: cert.toString('pem') };
}

export interface IssueRequest {
  /** the endpoint's public key (SPKI PEM) */
  publicKeyPem: string;
  /** `main`, or a file server's id */
  commonName: string;
  /** host names and IP addresses the endpoint is reached at */
  hosts: string[];
  lifetimeMs: number;
}

const IP = /^(\d{1,3}\.){3}\d{1,3}$|:/;

/**
 * Signs an endpoint certificate: usable to serve TLS (for `hosts`) and to prove who it
 * is as a TLS client (mutual TLS between main and file servers).
 */
export async function issueCertificate(ca: CaMaterial, req: IssueRequest): Promise<string> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const now = Date.now();
  const names = [...new Set(req.hosts)].map((h) =>
    IP.test(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h },
  );
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${req.commonName}`,
    issuer: caCert.subject,
    notBefore: new Date(now - CERT_BACKDATE_MS),
    notAfter: new Date(now + req.lifetimeMs),
    signingAlgorithm: SIGNING,
    publicKey: await importPublicKey(req.publicKeyPem),
    signingKey: await importSigningKey(ca.keyPem),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      new x509.SubjectAlternativeNameExtension(names, false),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return cert.toString('pem');
}
