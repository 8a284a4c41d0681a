import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdirDurable, syncDir, writeFileAtomic } from '../common/files.js';
import { createAgent, requestJson } from '../common/http-client.js';
import type { Logger } from '../common/logger.js';
import { retryWithBackoff } from '../common/retry.js';
import { keepRenewed, TlsIdentity } from '../common/tls.js';
import { Agent } from '../common/undici.js';
import {
  certificateFacts,
  certifiesKey,
  fingerprintOf,
  generateTlsKey,
  issuedBy,
  publicKeyOf,
  renewalDue,
} from '../crypto/certificates.js';
import { SedfsError } from '../protocol/errors.js';
import type { CaResponse, EnrollRequest, EnrollResponse } from '../protocol/main-api.js';
import { FINAL_JOIN_ERRORS } from './main-link.js';

export interface EnrollOptions {
  dataDir: string;
  mainUrl: string;
  joinToken: string;
  /** the CA fingerprint the operator gave; required unless a CA was saved by an earlier join */
  caFingerprint: string | undefined;
  serverId: string;
  advertiseUrl: string | undefined;
  log: Logger;
  signal?: AbortSignal;
  /** how a directory is made durable (the server's: see syncDirWhereSupported) */
  syncDirectory?: (dir: string) => Promise<void>;
}

const isFinal = (err: unknown) => err instanceof SedfsError && FINAL_JOIN_ERRORS.has(err.code);

/**
 * A file server's TLS identity: its key (made once, `<data>/tls/key.pem`, 0600), the
 * cluster CA (fetched from main and accepted only if its fingerprint is the one the
 * operator gave), and a certificate main signs for it.
 */
/**
 * This server's private key from `<dir>/key.pem` (made the first time, 0600), with
 * `public.pem` beside it for enrolment. The key is the one truth: public.pem is derived
 * from it, and written again if it is missing or is not the key's (a crash between the
 * two files' writes, or a damaged copy). Left so, enrolment failed at every start on
 * the missing file, reported as main being unreachable.
 */
export async function keyPairIn(
  dir: string,
  sync: (dir: string) => Promise<void> = syncDir,
): Promise<string> {
  const keyPath = join(dir, 'key.pem');
  if (!existsSync(keyPath)) await writeFileAtomic(keyPath, generateTlsKey().keyPem, 0o600, sync);
  const keyPem = await readFile(keyPath, 'utf8');
  const publicKeyPem = publicKeyOf(keyPem);
  const publicPath = join(dir, 'public.pem');
  const saved = await readFile(publicPath, 'utf8').catch(() => undefined);
  if (saved !== publicKeyPem) await writeFileAtomic(publicPath, publicKeyPem, 0o644, sync);
  return keyPem;
}

export class ServerEnrollment {
  readonly dir: string;
  private stopRenewing: () => void = () => {};

  private readonly sync: (dir: string) => Promise<void>;

  constructor(private readonly opts: EnrollOptions) {
    this.dir = join(opts.dataDir, 'tls');
    this.sync = opts.syncDirectory ?? syncDir;
  }

  async identity(): Promise<TlsIdentity> {
    await mkdirDurable(this.dir, this.sync, 0o700);
    const keyPem = await keyPairIn(this.dir, this.sync);
    const ca = await this.trustedCa();
    const held = await this.heldCertificate(ca, keyPem);
    const current = held ? { certPem: held, keyPem } : undefined;
    // A fresh certificate at each start names the address main publishes now; if main
    // is away, a saved one still good for a while lets the server start anyway.
    let certPem: string;
    try {
      certPem = await this.enroll(ca, current);
    } catch (err) {
      if (isFinal(err)) throw err;
      certPem =
        (held && !renewalDue(held) ? held : undefined) ??
        (await this.retrying(() => this.enroll(ca, current)));
    }
    return new TlsIdentity(ca, { certPem, keyPem });
  }

  /** Asks main for a new certificate (same key) when a third of the current one's life is left. */
  startRenewing(identity: TlsIdentity): void {
    this.stopRenewing = keepRenewed(
      identity,
      async () => {
        const keyPem = identity.keyPem as string;
        const current = { certPem: identity.certPem as string, keyPem };
        return { certPem: await this.enroll(identity.caPem, current), keyPem };
      },
      this.opts.log,
    );
  }

  stop(): void {
    this.stopRenewing();
  }

  /** The CA PEM: the saved one if it matches the given fingerprint (or none was given), else main's. */
  private async trustedCa(): Promise<string> {
    const path = join(this.dir, 'ca.pem');
    const pinned = this.opts.caFingerprint;
    if (existsSync(path)) {
      const saved = await readFile(path, 'utf8');
      if (!pinned || fingerprintOf(saved) === pinned) return saved;
    }
    if (!pinned)
      throw new SedfsError(
        'SEDFS_ERR_CONFIG',
        'the cluster CA fingerprint is needed to join the first time: --join, --ca-fingerprint or SEDFS_CA_FINGERPRINT',
      );
    const ca = await this.retrying(() => this.fetchCa());
    const got = fingerprintOf(ca);
    if (got !== pinned)
      throw new SedfsError(
        'SEDFS_ERR_CA_MISMATCH',
        `main at ${this.opts.mainUrl} has CA ${got}, not ${pinned}: refusing to join`,
      );
    await writeFileAtomic(path, ca, 0o644, this.sync);
    this.opts.log.info({ fingerprint: got }, 'cluster CA fetched and its fingerprint checked');
    return ca;
  }

  /** Main's CA over a connection nothing vouches for yet: only the fingerprint check makes it trusted. */
  private async fetchCa(): Promise<string> {
    const agent = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      return (await requestJson<CaResponse>(agent, `${this.opts.mainUrl}/v1/ca`)).ca;
    } finally {
      await agent.close();
    }
  }

  /** The saved certificate if it is still valid, from this CA, for this id and key. */
  private async heldCertificate(ca: string, keyPem: string): Promise<string | undefined> {
    const path = join(this.dir, 'cert.pem');
    if (!existsSync(path)) return undefined;
    const pem = await readFile(path, 'utf8');
    try {
      const usable =
        issuedBy(pem, ca) &&
        certificateFacts(pem).commonName === this.opts.serverId &&
        certifiesKey(pem, keyPem);
      return usable ? pem : undefined;
    } catch {
      // Not a certificate at all (a damaged file): enrol with the join token as if new.
      return undefined;
    }
  }

  /**
   * Asks main to sign this server's key. The join token vouches for it; so does its
   * current certificate, when it has one, which keeps a server enrolled before the
   * token was rotated renewing with the old token still in its configuration.
   */
  private async enroll(ca: string, current?: { certPem: string; keyPem: string }): Promise<string> {
    const agent = createAgent(new TlsIdentity(ca, current), { mainUrl: this.opts.mainUrl });
    try {
      const body: EnrollRequest = {
        id: this.opts.serverId,
        publicKey: await readFile(join(this.dir, 'public.pem'), 'utf8'),
        ...(this.opts.advertiseUrl ? { url: this.opts.advertiseUrl } : {}),
      };
      const res = await requestJson<EnrollResponse>(agent, `${this.opts.mainUrl}/v1/servers/enroll`, {
        body,
        headers: { authorization: `Bearer ${this.opts.joinToken}` },
      });
      await writeFileAtomic(join(this.dir, 'cert.pem'), res.cert, 0o644, this.sync);
      this.opts.log.info({ serial: certificateFacts(res.cert).serial }, 'certificate issued by main');
      return res.cert;
    } finally {
      await agent.close();
    }
  }

  private retrying<T>(fn: () => Promise<T>): Promise<T> {
    let said = false;
    return retryWithBackoff(fn, {
      isFinal: isFinal,
      onRetry: (err) => {
        if (said) return;
        said = true;
        this.opts.log.warn(
          { main: this.opts.mainUrl, reason: (err as Error).message },
          'main is unreachable; retrying',
        );
      },
      signal: this.opts.signal,
    });
  }
}
