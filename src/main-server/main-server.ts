import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { readOrCreate, writeFileAtomic } from '../common/files.js';
import { createAgent } from '../common/http-client.js';
import { createHttpApp, listenText } from '../common/http-server.js';
import { atMostOnceAMinute, type Logger } from '../common/logger.js';
import { type ServerFolder, startInServerFolder } from '../common/server-folder.js';
import { generateTicketKeyPem, ticketSigner } from '../crypto/tickets.js';
import { formatJoinString } from '../protocol/join-string.js';
import { AccountService } from './accounts.js';
import { answersAs, throttleProbes } from './address-probe.js';
import { AuditLog } from './audit.js';
import { BlobService } from './blob-service.js';
import { BodyBudget } from './body-budget.js';
import { ChunkDeleter } from './chunk-deleter.js';
import type { MainContext } from './context.js';
import { JoinToken } from './join-token.js';
import type { MainConfig } from './main-config.js';
import { setUpMainTls } from './main-tls.js';
import { NamespaceService } from './namespace.js';
import { Reconciler } from './reconciler.js';
import { Registry } from './registry.js';
import { Repairer } from './repairer.js';
import { ReplicaProver } from './replica-prover.js';
import { MAIN_ROUTES } from './routes/index.js';
import { StorageAuditor } from './storage-auditor.js';
import { SqliteNamespaceStore } from './store/sqlite-namespace-store.js';
import { SqliteStore } from './store/sqlite-store.js';
import { SurplusTrimmer } from './surplus-trimmer.js';

export interface RunningMain {
  /** The URL written to `<data>/main.addr`. */
  url: string;
  /** SHA-256 fingerprint of the cluster CA; undefined with --insecure-http */
  caFingerprint: string | undefined;
  /** `sedfs://TOKEN@HOST:PORT#FINGERPRINT`, also in `<data>/join`; undefined with --insecure-http */
  readonly joinString: string | undefined;
  /** Every URL main can be reached at. */
  urls: string[];
  /** the token in force now (an admin may rotate it) */
  readonly joinToken: string;
  joinTokenCreated: boolean;
  log: Logger;
  close(): Promise<void>;
}

export interface MainDeps {
  now?: () => number;
  random?: () => number;
  console?: boolean;
  /** fsyncs a directory (tests make it fail as some file systems do) */
  syncDir?: (dir: string) => Promise<void>;
}

/** Starts the main server: keys and token on first start, state store, routes, registry sweep. */
export function startMain(config: MainConfig, deps: MainDeps = {}): Promise<RunningMain> {
  return startInServerFolder(
    { name: 'main', keptAcrossCrash: "main's keys, token and certificates" },
    config,
    deps,
    (folder) => serveMain(config, deps, folder),
  );
}

async function serveMain(
  config: MainConfig,
  deps: MainDeps,
  { log, flush, syncDirectory, release }: ServerFolder,
): Promise<RunningMain> {
  const now = deps.now ?? Date.now;
  const key = await readOrCreate(join(config.data, 'ticket-key.pem'), generateTicketKeyPem, syncDirectory);
  const joinToken = await JoinToken.load(config.data, config.joinToken, syncDirectory);
  if (config.insecureHttp)
    log.warn(
      'PLAIN HTTP (--insecure-http): tokens, tickets and metadata cross the network readable; debugging only',
    );
  const tls = config.insecureHttp
    ? undefined
    : await setUpMainTls(config.data, config.host, config.certLifetime * 1000, log, syncDirectory).catch(
        (err: Error) => {
          // Said in main.log too: the console that started main may be long gone.
          log.error({ reason: err.message }, 'cannot start: the cluster CA is not usable');
          flush();
          throw err;
        },
      );
  const store = new SqliteStore(join(config.data, 'main.db'));
  const signer = ticketSigner(key.value);
  const heartbeatTimeoutMs = config.heartbeatTimeout * 1000;
  const registry = new Registry(
    store,
    log.child({ component: 'registry' }),
    now,
    heartbeatTimeoutMs,
    config.lostAfter * 1000,
    tls ? 'https' : 'http',
    // A server refused at an address retries every few seconds: its probes are throttled.
    throttleProbes((url, id) => answersAs(tls?.identity, url, id), now),
  );
  const blobs = new BlobService(
    store,
    registry,
    signer,
    log.child({ component: 'blobs' }),
    now,
    deps.random ?? Math.random,
    { replicas: config.replicas, ticketTtlMs: config.ticketTtl * 1000, uploadTtlMs: config.uploadTtl * 1000 },
  );
  // A file server's endpoint must show the certificate of a server registered there.
  const agent = createAgent(tls?.identity, { serverNames: (endpoint) => registry.idsAt(endpoint) });
  const deleter = new ChunkDeleter(
    store,
    registry,
    signer,
    agent,
    log.child({ component: 'deleter' }),
    now,
    config.extraGrace * 1000,
  );
  const prover = new ReplicaProver(signer, agent, now);
  const trimmer = new SurplusTrimmer(
    store,
    registry,
    prover,
    log.child({ component: 'surplus' }),
    now,
    config.extraGrace * 1000,
    () => deleter.kick(),
    (chunk, server) => void repairer.verifyReplica(chunk, server),
    config.surplusReadRate * 1024 * 1024,
  );
  const repairer = new Repairer(
    store,
    registry,
    signer,
    agent,
    log.child({ component: 'repair' }),
    now,
    {
      concurrency: config.repairConcurrency,
      rateMiBs: config.repairRate,
      batch: 512,
      span: 10_000,
    },
    prover,
    deps.random ?? Math.random,
  );
  registry.onLost = () => repairer.kick();
  const auditor = new StorageAuditor(
    store,
    registry,
    prover,
    log.child({ component: 'audit' }),
    now,
    () => repairer.kick(),
    (chunk, server) => void repairer.verifyReplica(chunk, server),
    (server) => reconciler.pullOrLog(server),
  );
  const reconciler = new Reconciler(
    store,
    registry,
    repairer,
    signer,
    agent,
    log.child({ component: 'reconcile' }),
    now,
    config.inventoryInterval * 1000,
  );
  const namespaceStore = new SqliteNamespaceStore(store.db, (config.freedGrace ?? config.ticketTtl) * 1000);
  const auditFull = atMostOnceAMinute((times: number, err: Error) =>
    log.warn(
      { times, reason: err.message },
      'the audit log cannot be written: refusals are counted until it can (said at most once a minute)',
    ),
  );
  const audit = new AuditLog(join(config.data, 'audit.log'), now, (err) => auditFull.note(err));
  const accounts = new AccountService(namespaceStore, log.child({ component: 'accounts' }), audit, now, {
    caFingerprint: tls?.fingerprint,
    openSignup: config.openSignup,
    sessionTtlMs: config.sessionTtl * 1000,
    inviteTtlMs: 7 * 24 * 3600_000,
  });
  const namespace = new NamespaceService(
    namespaceStore,
    blobs,
    log.child({ component: 'namespace' }),
    audit,
    now,
    () => deleter.kick(),
  );
  const ctx: MainContext = {
    store,
    registry,
    blobs,
    accounts,
    namespace,
    namespaceStore,
    repairer,
    reconciler,
    auditor,
    signer,
    log,
    joinToken,
    // Three beats fit in one timeout, so one lost beat never marks a server down.
    heartbeatIntervalMs: Math.max(100, Math.floor(heartbeatTimeoutMs / 3)),
    bodies: new BodyBudget(config.bigBodiesMib * 1024 * 1024, log.child({ component: 'bodies' }), now),
    tls,
  };

  const app = createHttpApp(log, tls?.identity);
  for (const route of MAIN_ROUTES) route(app, ctx);
  app.get('/v1/health', async () => ({ ok: true }));

  await app.listen({ host: config.host, port: config.port, listenTextResolver: listenText(tls?.identity) });
  const port = (app.server.address() as { port: number }).port;
  const urls = reachableUrls(config.host, port, tls ? 'https' : 'http');
  const url = urls[0] as string;
  // Atomic, so whoever waits for a file never reads it half-written; `join` last, so a
  // script that waits for it finds `main.addr` there too.
  await writeFileAtomic(join(config.data, 'main.addr'), `${url}\n`, 0o644, syncDirectory);
  if (tls)
    await joinToken.publish((t) =>
      formatJoinString({ mainUrl: url, joinToken: t, caFingerprint: tls.fingerprint }),
    );
  log.info(
    {
      urls,
      caFingerprint: tls?.fingerprint,
      replicas: config.replicas,
      heartbeatTimeoutS: config.heartbeatTimeout,
    },
    'main server listening',
  );
  tls?.startRenewing(log);

  const sweep = setInterval(() => registry.sweep(), Math.min(1000, heartbeatTimeoutMs / 4));
  sweep.unref();
  // Sweep often enough that short grace periods (tests, small setups) are honoured promptly.
  deleter.start(Math.max(250, Math.min(5000, config.uploadTtl * 500, (config.extraGrace || 10) * 500)));
  trimmer.start(Math.max(250, Math.min(5000, (config.extraGrace || 10) * 500)));
  repairer.start(Math.min(5000, heartbeatTimeoutMs));
  reconciler.start(Math.max(250, Math.min(60_000, config.inventoryInterval * 250)));
  if (config.auditInterval > 0) auditor.start(config.auditInterval * 1000);

  return {
    url,
    urls,
    caFingerprint: tls?.fingerprint,
    get joinString() {
      return joinToken.joinString;
    },
    get joinToken() {
      return joinToken.current;
    },
    joinTokenCreated: joinToken.created,
    log,
    async close() {
      clearInterval(sweep);
      tls?.stop();
      await app.close();
      await trimmer.stop();
      await auditor.stop();
      await deleter.stop();
      await repairer.stop();
      await reconciler.stop();
      await namespace.stop();
      await agent.close();
      audit.flushSuppressed();
      store.close();
      log.info('main server stopped');
      flush();
      release();
    },
  };
}

/** The URLs a bound address answers on; a wildcard bind lists loopback first, then each interface. */
export function reachableUrls(host: string, port: number, scheme: 'https' | 'http'): string[] {
  const fmt = (h: string) => `${scheme}://${h.includes(':') ? `[${h}]` : h}:${port}`;
  if (host !== '0.0.0.0' && host !== '::') return [fmt(host)];
  const out = [fmt('127.0.0.1')];
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family === 'IPv4' && !a.internal) out.push(fmt(a.address));
    }
  }
  return out;
}
