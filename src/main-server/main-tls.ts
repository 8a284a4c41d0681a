import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { mkdirDurable, syncDir, writeFileAtomic } from '../common/files.js';
import type { Logger } from '../common/logger.js';
import { keepRenewed, MAIN_NAME, TlsIdentity } from '../common/tls.js';
import { certifiesKey, fingerprintOf, generateTlsKey } from '../crypto/certificates.js';
import { type CaMaterial, createCa, issueCertificate } from '../crypto/cluster-ca.js';
import { SedfsError } from '../protocol/errors.js';

export interface MainTls {
  ca: CaMaterial;
  fingerprint: string;
  identity: TlsIdentity;
  /** Signs a certificate for a file server (or any endpoint) with the cluster CA. */
  issue(commonName: string, publicKeyPem: string, hosts: string[]): Promise<string>;
  /** Starts renewing main's own certificate before it expires. */
  startRenewing(log: Logger): void;
  stop(): void;
}

/**
 * Main's TLS: the cluster CA, made at first start and kept in `<data>/tls/` (keys
 * mode 0600), and main's own certificate, issued afresh at each start for every
 * address it answers on and renewed when a third of its life is left.
 */
export async function setUpMainTls(
  dataDir: string,
  bindHost: string,
  lifetimeMs: number,
  log?: Logger,
  /** how a directory is made durable (main's: see syncDirWhereSupported) */
  sync: (dir: string) => Promise<void> = syncDir,
): Promise<MainTls> {
  const dir = join(dataDir, 'tls');
  await mkdirDurable(dir, sync, 0o700);
  const ca = await loadOrCreateCa(dir, log, sync);
  const hosts = certificateHosts(bindHost);
  const own = async () => {
    const key = generateTlsKey();
    const certPem = await issueCertificate(ca, {
      publicKeyPem: key.publicKeyPem,
      commonName: MAIN_NAME,
      hosts,
      lifetimeMs,
    });
    await writeFileAtomic(join(dir, 'main-key.pem'), key.keyPem, 0o600, sync);
    await writeFileAtomic(join(dir, 'main.pem'), certPem, 0o644, sync);
    return { certPem, keyPem: key.keyPem };
  };
  const first = await own();
  const identity = new TlsIdentity(ca.certPem, first);
  let stopRenewing: () => void = () => {};
  return {
    ca,
    fingerprint: fingerprintOf(ca.certPem),
    identity,
    issue: (commonName, publicKeyPem, certHosts) =>
      issueCertificate(ca, { publicKeyPem, commonName, hosts: certHosts, lifetimeMs }),
    startRenewing(log) {
      stopRenewing = keepRenewed(identity, own, log);
    },
    stop() {
      stopRenewing();
    },
  };
}

/** Names main's certificate covers: the bound address, or for a wildcard every local one. */
export function certificateHosts(bindHost: string): string[] {
  if (bindHost !== '0.0.0.0' && bindHost !== '::') return [bindHost, 'localhost', '127.0.0.1'];
  const out = ['localhost', '127.0.0.1', '::1', hostname()];
  for (const addrs of Object.values(networkInterfaces()))
    for (const a of addrs ?? []) if (!a.internal) out.push(a.address.split('%')[0] as string);
  return out;
}

/** A file's text, or undefined if it does not exist. */
async function readIfThere(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The cluster CA from `ca-key.pem` and `ca.pem`, made the first time. The two are
 * written one after the other (each atomically), the key first: `ca.pem` is the commit
 * point. A key without its certificate is a first start that stopped between the two,
 * unless main's own certificate (`main.pem`, written only once the CA is complete) is
 * there too; that leftover key is certified, never replaced. Any other half (a lost
 * key, a lost certificate, a pair that does not belong together) stops main with what
 * to do: servers and clients trust this CA, and a new one made silently would cut them
 * all off, and destroy the old key for good.
 */
export async function loadOrCreateCa(
  dir: string,
  log?: Logger,
  sync: (dir: string) => Promise<void> = syncDir,
): Promise<CaMaterial> {
  const keyPath = join(dir, 'ca-key.pem');
  const certPath = join(dir, 'ca.pem');
  const keyPem = await readIfThere(keyPath);
  const certPem = await readIfThere(certPath);
  const startedBefore = existsSync(join(dir, 'main.pem'));
  const refuse = (why: string) => new SedfsError('SEDFS_ERR_CONFIG', why);
  if (keyPem !== undefined && certPem !== undefined) {
    let paired = false;
    try {
      paired = certifiesKey(certPem, keyPem);
    } catch (err) {
      throw refuse(
        `${keyPath} or ${certPath} is damaged (${(err as Error).message}): restore the cluster CA from a backup; ca.pem is also in every file server's <data>/tls/`,
      );
    }
    if (!paired)
      throw refuse(
        `${certPath} is not the certificate of ${keyPath}: restore the pair from a backup (ca.pem is also in every file server's <data>/tls/)`,
      );
    return { keyPem, certPem };
  }
  if (keyPem === undefined && certPem !== undefined)
    throw refuse(
      `${keyPath} is missing beside ${certPath}: the cluster CA cannot sign without it. Restore it from a backup, or move ${dir} away to make a new CA (every file server must then join again, with the new fingerprint)`,
    );
  if (keyPem !== undefined && startedBefore)
    throw refuse(
      `${certPath} is missing: copy it back from any file server's <data>/tls/ca.pem (main checks that it is this key's), or move ${dir} away to make a new CA (every file server must then join again)`,
    );
  if (keyPem === undefined && startedBefore)
    throw refuse(
      `${keyPath} and ${certPath} are missing but main ran with them (${join(dir, 'main.pem')} is there): restore them from a backup, or move ${dir} away to make a new CA (every file server must then join again)`,
    );
  let ca: CaMaterial;
  if (keyPem !== undefined) {
    try {
      ca = await createCa(undefined, keyPem);
    } catch (err) {
      throw refuse(`${keyPath} is damaged (${(err as Error).message}): remove it to make a new CA`);
    }
    log?.warn(
      'the cluster CA key was written but not its certificate (a first start stopped between them): certified now',
    );
  } else {
    ca = await createCa();
    await writeFileAtomic(keyPath, ca.keyPem, 0o600, sync);
  }
  await writeFileAtomic(certPath, ca.certPem, 0o644, sync);
  return ca;
}
