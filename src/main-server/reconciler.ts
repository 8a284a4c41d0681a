import { errorFromResponse, requestJson } from '../common/http-client.js';
import { unreachable } from '../common/http-errors.js';
import type { Logger } from '../common/logger.js';
import { SerialTask } from '../common/serial-task.js';
import { type WatchedResponse, watchedRequest } from '../common/stall-watch.js';
import type { Agent } from '../common/undici.js';
import type { TicketSigner } from '../crypto/tickets.js';
import { isChunkId } from '../protocol/chunk-id.js';
import { SedfsError } from '../protocol/errors.js';
import { STALL_MS } from '../protocol/limits.js';
import type { InventoryResponse, ScrubResult } from '../protocol/main-api.js';
import type { ServerTicketOp } from '../protocol/ticket.js';
import { TICKET_HEADER } from '../protocol/ticket.js';
import type { Registry } from './registry.js';
import type { Repairer } from './repairer.js';
import type { MainStore, ServerRecord } from './store/store.js';

/** Ids handed to the store per transaction. */
const BATCH = 10_000;
/** How soon a beat may ask a server for its inventory again (`pullUnlessUnderway`). */
const ASK_AGAIN_MS = 60_000;
/** Ids of missing and extra chunks named in the log, so one line stays readable. */
const LOG_SAMPLE = 20;

/**
 * Compares what a file server holds with what main expects there (the original's
 * "missing or additional files") and records the difference; repair and the deleter
 * act on that record. A full inventory comes from the server when it registers, and
 * main asks each live server for one again every `intervalMs` and on `check --repair`.
 * Between those, heartbeats carry each server's own changes. Inventories stream
 * through the store in batches, so a million ids never sit in memory.
 */
export class Reconciler {
  private readonly task: SerialTask;
  /** One inventory per server at a time; a second waits for the first. */
  private readonly busy = new Map<string, Promise<unknown>>();
  /** When main last asked each server for an inventory from a beat (`pullUnlessUnderway`). */
  private readonly askedAt = new Map<string, number>();

  constructor(
    private readonly store: MainStore,
    private readonly registry: Registry,
    private readonly repairer: Repairer,
    private readonly signer: TicketSigner,
    private readonly agent: Agent,
    private readonly log: Logger,
    private readonly now: () => number,
    /** how old a server's last full inventory may get before main asks for a new one */
    private readonly intervalMs: number,
  ) {
    this.task = new SerialTask(() => this.pass(), log, 'reconciliation pass');
  }

  start(checkEveryMs: number): void {
    if (this.intervalMs > 0) this.task.start(checkEveryMs);
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  /**
   * Main's clock now: a file server told this in an answer and listing after it sends it
   * back with the list (LISTED_AFTER_HEADER), for `ingest`'s `listedAfter`.
   */
  mark(): number {
    return this.now();
  }

  /**
   * Reads a full inventory (chunk ids, one per line) and brings main's record in line.
   * `listedAfter`: a time (main's clock) before the server began listing; only replicas
   * main recorded before it can be missing. Later ones may have been written after the
   * listing passed them (they come with the server's next beat). Now if unknown.
   */
  ingest(
    serverId: string,
    body: AsyncIterable<Buffer | string>,
    listedAfter?: number,
  ): Promise<InventoryResponse> {
    const previous = this.busy.get(serverId) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.compare(serverId, body, listedAfter));
    this.busy.set(serverId, run);
    void run
      .finally(() => {
        if (this.busy.get(serverId) === run) this.busy.delete(serverId);
      })
      .catch(() => undefined);
    return run;
  }

  /** Asks one server for its full inventory and compares it. */
  async pull(server: ServerRecord): Promise<InventoryResponse> {
    const url = `${server.url}/v1/inventory`;
    // The server lists once it has the request: what main recorded after this moment may
    // be written there after the listing passed it.
    const listedAfter = this.now();
    let res: WatchedResponse;
    try {
      // A million ids may take a while to compare: no limit on the whole body, a watch
      // on each wait for the next piece of it.
      res = await watchedRequest(this.agent, url, {
        headers: { [TICKET_HEADER]: this.ticket('inventory', server.id) },
        bodyTimeout: 0,
        expectedIds: [server.id],
      });
    } catch (err) {
      throw err instanceof SedfsError ? err : unreachable(url, err);
    }
    if (res.statusCode >= 400) throw await errorFromResponse(res, url);
    return this.ingest(server.id, res.pieces(), listedAfter);
  }

  /** A full inventory from every live server, one after another; for `check --repair`. */
  async pullAll(): Promise<void> {
    for (const server of this.registry.live()) await this.pullOrLog(server);
  }

  /**
   * Has every live server re-hash everything it holds (Tahoe's `check --verify`). Bad
   * replicas are quarantined there and reported back through the scrubber's report.
   */
  async verifyAll(): Promise<ScrubResult[]> {
    return Promise.all(
      this.registry.live().map(async (server): Promise<ScrubResult> => {
        try {
          const r = await requestJson<{ checked: number; bad: string[] }>(
            this.agent,
            `${server.url}/v1/scrub`,
            {
              body: {},
              headers: { [TICKET_HEADER]: this.ticket('scrub', server.id) },
              // A scrub reads everything the server holds: as long as it takes, while the
              // server answers its health checks.
              headersTimeoutMs: 0,
              stallMs: STALL_MS,
              expectedIds: [server.id],
            },
          );
          // The bad ones were already reported (and marked) one by one as the scrub found them.
          this.log.info({ server: server.id, checked: r.checked, corrupt: r.bad.length }, 'server verified');
          return { server: server.id, checked: r.checked, corrupt: r.bad.length };
        } catch (err) {
          this.log.warn({ server: server.id, reason: (err as Error).message }, 'could not verify a server');
          return { server: server.id, checked: 0, corrupt: 0, error: (err as Error).message };
        }
      }),
    );
  }

  private async pass(): Promise<void> {
    const due = this.registry.live().filter((s) => this.now() - s.inventoryAt >= this.intervalMs);
    for (const server of due) await this.pullOrLog(server);
  }

  /**
   * Asks for a server's inventory unless one is on its way, or was asked for this way
   * within the last minute: a beat comes every few seconds, a million ids take longer
   * to compare, and a server whose inventory cannot be read would otherwise be asked at
   * every beat.
   */
  pullUnlessUnderway(server: ServerRecord): void {
    const now = this.now();
    if (this.busy.has(server.id) || now - (this.askedAt.get(server.id) ?? -Infinity) < ASK_AGAIN_MS) return;
    this.askedAt.set(server.id, now);
    void this.pullOrLog(server);
  }

  async pullOrLog(server: ServerRecord): Promise<void> {
    await this.pull(server).catch((err: Error) =>
      this.log.warn({ server: server.id, reason: err.message }, 'could not get an inventory'),
    );
  }

  private ticket(op: ServerTicketOp, serverId: string): string {
    return this.signer.sign({ op, chunks: [], servers: [serverId], exp: this.now() + 60_000 });
  }

  private async compare(
    serverId: string,
    body: AsyncIterable<Buffer | string>,
    listedAfter: number | undefined,
  ): Promise<InventoryResponse> {
    if (!this.store.getServer(serverId)) throw new SedfsError('SEDFS_ERR_UNKNOWN_SERVER');
    // The store takes the listing time as no later than now: a server naming a time to
    // come cannot have replicas main records while it reads the list judged by it.
    const now = this.now();
    this.store.beginInventory(serverId, listedAfter ?? now, now);
    let batch: string[] = [];
    let reported = 0;
    let rest = '';
    let previous = '';
    const take = (line: string) => {
      if (line === '') return;
      if (!isChunkId(line))
        throw new SedfsError('SEDFS_ERR_BAD_CHUNK_ID', 'inventory holds a malformed chunk id');
      // Ascending order lets main merge the list with its own instead of holding either.
      if (line <= previous)
        throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'inventory ids must be unique and in ascending order');
      previous = line;
      batch.push(line);
      if (batch.length === BATCH) flush();
    };
    const flush = () => {
      this.store.addInventory(serverId, batch);
      reported += batch.length;
      batch = [];
    };
    for await (const piece of body) {
      const lines = (rest + (typeof piece === 'string' ? piece : piece.toString('latin1'))).split('\n');
      rest = lines.pop() as string;
      if (rest.length > 64) throw new SedfsError('SEDFS_ERR_BAD_CHUNK_ID', 'inventory line too long');
      for (const line of lines) take(line);
    }
    take(rest);
    flush();
    const diff = this.store.finishInventory(serverId, LOG_SAMPLE, this.now());
    // What is missing now shows as under-replicated: start restoring it.
    if (diff.missingCount > 0) this.repairer.kick();
    const line = { server: serverId, reported, missing: diff.missingCount, extra: diff.extraCount };
    if (diff.missingCount + diff.extraCount === 0) this.log.info(line, 'inventory matches');
    else
      this.log.warn(
        { ...line, missingIds: diff.missing, extraIds: diff.extra },
        'inventory differs from what main expects',
      );
    return { reported, missing: diff.missingCount, extra: diff.extraCount };
  }
}
