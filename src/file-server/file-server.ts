import type { StatsFs } from 'node:fs';
import { join } from 'node:path';
import { BufferPool } from '../common/buffer-pool.js';
import { ChunkReader } from '../common/chunk-reader.js';
import { readOrCreate, writeFileAtomic } from '../common/files.js';
import { createAgent } from '../common/http-client.js';
import { createHttpApp, listenText } from '../common/http-server.js';
import { atMostOnceAMinute, type Logger } from '../common/logger.js';
import { type ServerFolder, startInServerFolder } from '../common/server-folder.js';
import { peerName } from '../common/tls.js';
import { normalizeFingerprint } from '../crypto/certificates.js';
import { randomHexId } from '../crypto/hash.js';
import { SedfsError } from '../protocol/errors.js';
import { DEFAULT_SEALED_CHUNK_BYTES, REPAIR_COPIES_AT_ONCE } from '../protocol/file-server-api.js';
import { ChunkStore } from './chunk-store.js';
import type { FileServerContext } from './context.js';
import { ServerEnrollment } from './enroll.js';
import type { FileServerConfig } from './file-server-config.js';
import { MainLink } from './main-link.js';
import { deleteChunkRoute } from './routes/delete-chunk.js';
import { getChunkRoute } from './routes/get-chunk.js';
import { healthRoute } from './routes/health.js';
import { listInventoryRoute } from './routes/list-inventory.js';
import { putChunkRoute } from './routes/put-chunk.js';
import { putChunkBatchRoute } from './routes/put-chunk-batch.js';
import { replicateChunkRoute } from './routes/replicate-chunk.js';
import { scrubAllRoute } from './routes/scrub-all.js';
import { verifyChunkRoute } from './routes/verify-chunk.js';
import { Scrubber } from './scrubber.js';

export interface RunningFileServer {
  id: string;
  url: string;
  log: Logger;
  /** Resolves when the server has joined the cluster. */
  joined: Promise<void>;
  close(): Promise<void>;
}

/**
 * `signal` gives up a start-up still waiting for main (the server is being stopped);
 * `syncDir` fsyncs a directory (tests make it fail as some file systems do), `statfs`
 * asks the data folder's free space (the same)
 */
export interface FileServerDeps {
  console?: boolean;
  now?: () => number;
  signal?: AbortSignal;
  syncDir?: (dir: string) => Promise<void>;
  statfs?: (path: string) => Promise<StatsFs>;
}

export function startFileServer(
  config: FileServerConfig,
  deps: FileServerDeps = {},
): Promise<RunningFileServer> {
  return startInServerFolder({ name: 'fileserver', keptAcrossCrash: 'chunks' }, config, deps, (folder) =>
    serveFiles(config, deps, folder),
  );
}

async function serveFiles(
  config: FileServerConfig,
  deps: FileServerDeps,
  { log, flush, syncDirectory, release }: ServerFolder,
): Promise<RunningFileServer> {
  // A persistent id makes a restarted server the same server to main.
  const { value: serverId } = await readOrCreate(
    join(config.data, 'server-id'),
    () => randomHexId(16),
    syncDirectory,
  );
  const store = new ChunkStore(
    config.data,
    config.maxChunkMib * 1024 * 1024,
    {
      onBadPack: (pack, why) =>
        log.error(
          { pack, reason: why },
          'unreadable chunk pack moved to quarantine/; its chunks are missing here',
        ),
      onCompactFailed: (pack, why) =>
        log.warn({ pack, reason: why }, 'chunk pack not compacted; it stays as it was'),
      onMovedUp: (chunks) =>
        log.info({ chunks }, 'chunk files moved from chunks/aa/bb/ to chunks/aa/ (the one-level layout)'),
      onFreeSpaceUnknown: (err) =>
        log.warn(
          { code: (err as NodeJS.ErrnoException).code, reason: (err as Error).message },
          'the free space of the data folder cannot be read (statfs failed): chunks are taken until a write finds the disk full; said once until it can be read again',
        ),
      onNoSpace: (info) => {
        // Main hears of the space left at once, so placement stops choosing this server.
        link?.reportSpaceNow();
        diskFull.note(info);
      },
    },
    syncDirectory,
    { reserveBytes: config.reserveMib * 1024 * 1024, ...(deps.statfs ? { statfs: deps.statfs } : {}) },
  );
  const diskFull = atMostOnceAMinute((refused: number, info: { freeBytes: number; reserveBytes: number }) =>
    log.warn(
      { refused, freeBytes: info.freeBytes, reserveBytes: info.reserveBytes },
      'out of disk space: new chunks are refused (reads go on); said at most once a minute, with the number refused',
    ),
  );
  if (config.insecureHttp)
    log.warn(
      'PLAIN HTTP (--insecure-http): tokens, tickets and metadata cross the network readable; debugging only',
    );
  else if (!config.main.startsWith('https://'))
    throw new SedfsError(
      'SEDFS_ERR_CONFIG',
      `main must be an https URL (got ${config.main}); --insecure-http is for debugging only`,
    );
  const stopJoining = new AbortController();
  deps.signal?.addEventListener('abort', () => stopJoining.abort(), { once: true });
  const enrollment = config.insecureHttp
    ? undefined
    : new ServerEnrollment({
        dataDir: config.data,
        mainUrl: config.main,
        joinToken: config.joinToken,
        caFingerprint: config.caFingerprint ? normalizeFingerprint(config.caFingerprint) : undefined,
        serverId,
        advertiseUrl: config.advertise,
        log: log.child({ component: 'tls' }),
        signal: stopJoining.signal,
        syncDirectory,
      });
  // The certificate comes from main while the chunks are counted: a restart is back sooner.
  const initialized = store.init();
  const [tls] = await Promise.all([enrollment?.identity(), initialized]).catch(async (err) => {
    stopJoining.abort();
    await initialized.catch(() => undefined);
    throw err;
  });
  // A peer's endpoint must show the certificate of the server the ticket names there
  // (the next in a chain, or a repair copy's source): each request says which.
  const agent = createAgent(tls, { mainUrl: config.main });
  const chunkReader = new ChunkReader(tls);
  const revoked = new Set<string>();

  let link: MainLink | undefined;
  const scrubber = new Scrubber(
    store,
    (ids) => (link ? link.reportCorrupt(ids) : Promise.resolve()),
    log.child({ component: 'scrubber' }),
    {
      intervalSeconds: config.scrubInterval,
      rateMiBs: config.scrubRate,
    },
  );
  const ctx: FileServerContext = {
    serverId,
    store,
    log,
    agent,
    chunkReader,
    // Repair copies are received whole, and main keeps REPAIR_COPIES_AT_ONCE in flight by
    // default (a target may get all of them). Sized for a sealed chunk, not 4 MiB: every
    // default chunk missed that pool by its 16-byte tag and got a fresh buffer, whose
    // first touch made repair's copying into it cost 0.39 s of the target's CPU per GiB.
    // Made by the store, which writes a copy from its buffer as it is (see storeWhole).
    copyBuffers: new BufferPool(DEFAULT_SEALED_CHUNK_BYTES, REPAIR_COPIES_AT_ONCE, (n) =>
      store.wholeChunkBuffer(n),
    ),
    now: deps.now ?? Date.now,
    keys: () => link?.currentKeys(),
    scrubAll: () => scrubber.pass(true),
    tls: tls !== undefined,
    revoked,
  };
  const app = createHttpApp(log, tls);
  // A server an admin removed is refused here too, whatever it asks.
  app.addHook('onRequest', async (req) => {
    const peer = peerName(req.raw);
    if (peer && revoked.has(peer)) throw new SedfsError('SEDFS_ERR_SERVER_REMOVED');
  });
  for (const route of [
    putChunkRoute,
    putChunkBatchRoute,
    getChunkRoute,
    deleteChunkRoute,
    replicateChunkRoute,
    verifyChunkRoute,
    listInventoryRoute,
    scrubAllRoute,
    healthRoute,
  ])
    route(app, ctx);
  await app.listen({ host: config.host, port: config.port, listenTextResolver: listenText(tls) });
  const port = (app.server.address() as { port: number }).port;
  const specific = config.host !== '0.0.0.0' && config.host !== '::';
  const scheme = tls ? 'https' : 'http';
  const ownUrl = config.advertise ?? (specific ? `${scheme}://${config.host}:${port}` : undefined);

  link = new MainLink(
    {
      mainUrl: config.main,
      joinToken: config.joinToken,
      serverId,
      port,
      ...(ownUrl ? { advertiseUrl: ownUrl } : {}),
    },
    store,
    agent,
    log.child({ component: 'main-link' }),
    (ids) => {
      revoked.clear();
      for (const id of ids) revoked.add(id);
    },
  );

  const url = ownUrl ?? `${scheme}://127.0.0.1:${port}`;
  try {
    await writeFileAtomic(join(config.data, 'fileserver.addr'), `${url}\n`, 0o644, syncDirectory);
  } catch (err) {
    // Listening already: a start that fails from here must let go of its port and
    // connections, or the process (a test, `sedfs dev`) never ends.
    await app.close();
    chunkReader.close();
    await agent.close();
    flush();
    throw err;
  }
  log.info({ server: serverId, port, main: config.main }, 'file server listening');
  const joined = link.start(stopJoining.signal);
  if (tls) enrollment?.startRenewing(tls);
  joined.catch((err: Error) => log.error({ reason: err.message }, 'could not join the cluster'));
  // Scrub once joined: a bad chunk is reported as soon as it is found.
  joined.then(
    () => scrubber.start(),
    () => undefined,
  );

  return {
    id: serverId,
    url,
    log,
    joined,
    async close() {
      stopJoining.abort();
      enrollment?.stop();
      link?.stop();
      await scrubber.stop();
      await app.close();
      chunkReader.close();
      await agent.close();
      log.info('file server stopped');
      flush();
      release();
    },
  };
}
