import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../common/files.js';
import type { Logger } from '../common/logger.js';
import { keepRenewed, MAIN_NAME, TlsIdentity } from '../common/tls.js';
import { fingerprintOf, generateTlsKey } from '../crypto/certificates.js';
import { type CaMaterial, createCa, issueCertificate } from '../crypto/cluster-ca.js';

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
export async function setUpMainTls(dataDir: string, bindHost: string, lifetimeMs: number): Promise<MainTls> {
  const dir = join(dataDir, 'tls');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caKeyPath = join(dir, 'ca-key.pem');
  const caPath = join(dir, 'ca.pem');
  let ca: CaMaterial;
  if (existsSync(caKeyPath) && existsSync(caPath)) {
    ca = { keyPem: await readFile(caKeyPath, 'utf8'), certPem: await readFile(caPath, 'utf8') };
  } else {
    ca = await createCa();
    await writeFileAtomic(caKeyPath, ca.keyPem, 0o600);
    await writeFileAtomic(caPath, ca.certPem, 0o644);
  }
  const hosts = certificateHosts(bindHost);
  const own = async () => {
    const key = generateTlsKey();
    const certPem = await issueCertificate(ca, {
      publicKeyPem: key.publicKeyPem,
      commonName: MAIN_NAME,
      hosts,
      lifetimeMs,
    });
    await writeFileAtomic(join(dir, 'main-key.pem'), key.keyPem, 0o600);
    await writeFileAtomic(join(dir, 'main.pem'), certPem, 0o644);
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
