import type { IncomingMessage } from 'node:http';
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from 'node:tls';
import {
  certificateFacts,
  certifiedKeyFingerprint,
  issuedLife,
  renewalDue,
  validityRenewalDue,
} from '../crypto/certificates.js';
import type { Logger } from './logger.js';

/**
 * AES-128-GCM first: with AES-NI it is the cheapest AEAD, and chunk traffic crosses TLS
 * up to six times per replica chain (each hop encrypts and decrypts). 128-bit keys are
 * ample for transport; contents have their own AES-256-GCM layer underneath.
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
].join(':');

/**
 * What one process trusts and shows on TLS connections: the cluster CA, and for main
 * and file servers their own certificate and key. Renewal replaces the certificate in
 * place; connections made after that use the new one (listeners are told, so a server
 * can swap its secure context).
 */
export class TlsIdentity {
  private readonly listeners = new Set<() => void>();
  /** how many times the certificate was renewed: connectors rebuild when it moves */
  private renewals = 0;

  constructor(
    readonly caPem: string,
    private cert?: { certPem: string; keyPem: string },
  ) {}

  get certPem(): string | undefined {
    return this.cert?.certPem;
  }

  get keyPem(): string | undefined {
    return this.cert?.keyPem;
  }

  renew(certPem: string, keyPem: string): void {
    this.cert = { certPem, keyPem };
    this.renewals++;
    for (const l of this.listeners) l();
  }

  /**
   * Tells `listener` of every renewal until the function returned is called. For what
   * lives as long as the identity (a server's secure context); anything shorter-lived
   * reads `generation` instead, and so holds nothing it would have to give back.
   */
  onRenew(listener: () => void): () => void {
    const own = () => listener();
    this.listeners.add(own);
    return () => this.listeners.delete(own);
  }

  /** Changes at every renewal. */
  get generation(): number {
    return this.renewals;
  }

  /** Listeners `onRenew` holds now (a seam for tests: nothing short-lived may stay among them). */
  get renewListeners(): number {
    return this.listeners.size;
  }

  /** Options for `https.createServer` and `setSecureContext`. */
  serverOptions(): { ca: string; cert: string; key: string } {
    if (!this.cert) throw new Error('a TLS server needs a certificate');
    return { ca: this.caPem, cert: this.cert.certPem, key: this.cert.keyPem };
  }
}

/** What this process's TLS connections trust, show and accept, whoever makes them. */
export function clientTlsOptions(tls: TlsIdentity) {
  return {
    ca: tls.caPem,
    ...(tls.certPem && tls.keyPem ? { cert: tls.certPem, key: tls.keyPem } : {}),
    minVersion: 'TLSv1.2' as const,
    ciphers: TLS_CIPHERS,
  };
}

/**
 * The common name on main's certificate. Server ids are 32 hex digits, so no file
 * server can enrol under it: a certificate naming it is main's and no one else's.
 */
export const MAIN_NAME = 'main';

/**
 * The file-server ids this process expects to answer at an endpoint (`endpointOfUrl`):
 * from main's registry, or the ticket that sends a chunk there. Undefined when it
 * expects no one in particular.
 */
export type ServerNames = (endpoint: string) => readonly string[] | undefined;

/** Host and port as undici hands them to a connector, and as a URL has them (IPv6 without brackets, port '' for the default). */
export function endpointOf(u: { hostname: string; port?: string | number | null; protocol: string }): string {
  const port = u.port || (u.protocol === 'https:' ? 443 : 80);
  return `${u.hostname.replace(/^\[|\]$/g, '')}:${port}`;
}

/** A URL's endpoint as the connector sees it: what `ServerNames` is asked about. */
export function endpointOfUrl(url: string): string {
  return endpointOf(new URL(url));
}

/** `checkServerIdentity` for a file server expected to be one of `ids`: its host, and its CN among them. */
export function isServerCertificate(
  host: string,
  cert: PeerCertificate,
  ids: readonly string[],
): Error | undefined {
  const hostError = checkServerIdentity(host, cert);
  if (hostError) return hostError;
  const cn = String(cert.subject?.CN);
  if (ids.includes(cn)) return undefined;
  return Object.assign(
    new Error(
      `the certificate shown at ${host} names ${cn}, not the server expected there (${ids.join(', ')})`,
    ),
    { code: NOT_EXPECTED_SERVER_CERT },
  );
}

/** The error code a connection to a file server gets when the certificate is the cluster's but names another server. */
export const NOT_EXPECTED_SERVER_CERT = 'SEDFS_NOT_EXPECTED_SERVER_CERTIFICATE';

export function isMainCertificate(host: string, cert: PeerCertificate): Error | undefined {
  const hostError = checkServerIdentity(host, cert);
  if (hostError) return hostError;
  if (cert.subject?.CN === MAIN_NAME) return undefined;
  return Object.assign(
    new Error(`the certificate shown for main names ${String(cert.subject?.CN)}, not main`),
    {
      code: NOT_MAIN_CERT,
    },
  );
}

/** The error code a connection to main gets when the certificate is the cluster's but not main's. */
export const NOT_MAIN_CERT = 'SEDFS_NOT_MAIN_CERTIFICATE';

/**
 * The common name of the certificate the peer presented, if it chains to the cluster
 * CA; undefined for a plain connection, no certificate, or one from anyone else.
 */
export function peerName(req: IncomingMessage): string | undefined {
  const peer = peerOf(req);
  // Checked every time: a kept-alive connection may outlive the certificate it began with.
  return peer && Date.now() <= peer.notAfter ? peer.name : undefined;
}

/**
 * Whether the peer's certificate is due for renewal (a third of its life left, as
 * `renewalDue` has it): such a connection is closed after its answer, so the peer's
 * next one shows the certificate it renews meanwhile, not the one about to expire.
 */
export function peerRenewalDue(req: IncomingMessage): boolean {
  const peer = peerOf(req);
  return peer !== undefined && validityRenewalDue(peer);
}

/**
 * A connection's certificate is fixed by its handshake: read it once, not per request
 * (small-chunk writes made every request pay for it).
 */
function peerOf(req: IncomingMessage): Peer | undefined {
  // No socket once the connection is gone (an answer sent after the peer hung up).
  const socket = req.socket as Partial<TLSSocket> | null;
  if (!socket?.authorized || typeof socket.getPeerCertificate !== 'function') return undefined;
  let peer = peers.get(socket);
  if (!peer) {
    const cert = socket.getPeerCertificate();
    // A closed socket answers with an empty object: nothing to name, nothing to keep.
    if (!cert?.valid_to) return undefined;
    const cn = cert.subject?.CN;
    peer = {
      name: typeof cn === 'string' ? cn : undefined,
      notBefore: Date.parse(cert.valid_from),
      notAfter: Date.parse(cert.valid_to),
      raw: cert.raw,
    };
    peers.set(socket, peer);
  }
  return peer;
}

/** The fingerprint of the key the peer's certificate certifies (`publicKeyFingerprint`). */
export function peerKey(req: IncomingMessage): string | undefined {
  const peer = peerOf(req);
  if (!peer?.raw) return undefined;
  peer.key ??= certifiedKeyFingerprint(peer.raw);
  return peer.key;
}
interface Peer {
  name: string | undefined;
  notBefore: number;
  notAfter: number;
  raw: Buffer | undefined;
  key?: string;
}
const peers = new WeakMap<object, Peer>();

/**
 * Checks the identity's certificate every tenth of its issued life (1 s to 1 h) and, once
 * renewal is due, replaces it with what `renew` gets; a failed attempt is logged and
 * tried again at the next check. Returns the function that stops it.
 */
export function keepRenewed(
  identity: TlsIdentity,
  renew: () => Promise<{ certPem: string; keyPem: string }>,
  log: Logger,
): () => void {
  const facts = certificateFacts(identity.certPem as string);
  const every = Math.max(1000, Math.min(3600_000, issuedLife(facts) / 10));
  const timer = setInterval(() => {
    if (!renewalDue(identity.certPem as string)) return;
    renew().then(
      (c) => {
        identity.renew(c.certPem, c.keyPem);
        log.info({ serial: certificateFacts(c.certPem).serial }, 'certificate renewed');
      },
      (err: Error) => log.warn({ reason: err.message }, 'could not renew the certificate yet'),
    );
  }, every);
  timer.unref();
  return () => clearInterval(timer);
}
