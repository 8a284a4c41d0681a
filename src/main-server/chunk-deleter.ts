import type { Logger } from '../common/logger.js';
import { SerialTask } from '../common/serial-task.js';
import { watchedRequest } from '../common/stall-watch.js';
import type { Agent } from '../common/undici.js';
import type { TicketSigner } from '../crypto/tickets.js';
import { TICKET_HEADER } from '../protocol/ticket.js';
import type { Registry } from './registry.js';
import type { MainStore } from './store/store.js';

/** Orders sent per live server per pass. */
const BATCH = 256;
const CONCURRENCY = 8;
/** How long an order its server refused (or that failed) waits before it is tried again. */
const RETRY_AFTER_MS = 5_000;

/**
 * Sends the delete orders for replicas of freed chunks (a file removed, a version
 * replaced, an upload that expired without committing), for unknown chunks once their
 * grace period is over, and for copies beyond R that the `SurplusTrimmer` found safe to
 * drop. The queue lives in the store, so orders survive a restart; an order for a server
 * that is down waits until it is up, one it refused waits a little behind the others,
 * and one for a removed server is dropped. A 404 counts as done.
 */
export class ChunkDeleter {
  private readonly task: SerialTask;

  constructor(
    private readonly store: MainStore,
    private readonly registry: Registry,
    private readonly signer: TicketSigner,
    private readonly agent: Agent,
    private readonly log: Logger,
    private readonly now: () => number,
    /** how long an unknown chunk on a server waits before it is deleted */
    private readonly extraGraceMs = 3600_000,
  ) {
    this.task = new SerialTask(() => this.pass(), log, 'chunk deletion pass');
  }

  start(intervalMs: number): void {
    this.task.start(intervalMs);
  }

  /** Runs a pass soon; passes never overlap. */
  kick(): void {
    this.task.kick();
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  private async pass(): Promise<void> {
    const extras = this.store.expireExtras(this.now() - this.extraGraceMs, this.now());
    if (extras > 0)
      this.log.info({ chunks: extras }, 'extra chunks past their grace period queued for deletion');
    const expired = this.store.expireUploads(this.now());
    if (expired > 0)
      this.log.info({ uploads: expired }, 'expired uploads ended; their orphan chunks queued for deletion');
    const dropped = this.store.dropDeletionsOnRemoved();
    if (dropped > 0)
      this.log.info({ orders: dropped }, 'delete orders for removed servers dropped: they can never be sent');
    const live = new Map(this.registry.live().map((s) => [s.id, s.url]));
    const todo = this.store.pendingDeletions([...live.keys()], BATCH, this.now());
    let deleted = 0;
    const defer = (d: { chunkId: string; serverId: string }) =>
      this.store.deletionDeferred(d.chunkId, d.serverId, this.now() + RETRY_AFTER_MS);
    let stale = 0;
    const work = async (d: { chunkId: string; serverId: string }) => {
      // Checked against the map just before it goes: a copy counted as good since the
      // order was queued (repair copied the chunk there) is kept, and the order dropped.
      if (this.store.dropDeletionOfGoodReplica(d.chunkId, d.serverId)) {
        stale++;
        return;
      }
      const ticket = this.signer.sign({
        op: 'delete',
        chunks: [d.chunkId],
        servers: [d.serverId],
        exp: this.now() + 60_000,
      });
      try {
        const res = await watchedRequest(this.agent, `${live.get(d.serverId)}/v1/chunks/${d.chunkId}`, {
          method: 'DELETE',
          headers: { [TICKET_HEADER]: ticket },
          expectedIds: [d.serverId],
        });
        await res.body.dump();
        if (res.statusCode === 200 || res.statusCode === 404) {
          this.store.deletionDone(d.chunkId, d.serverId);
          deleted++;
        } else {
          defer(d);
          this.log.warn(
            { chunk: d.chunkId, server: d.serverId, status: res.statusCode },
            'chunk delete refused',
          );
        }
      } catch (err) {
        defer(d);
        this.log.warn(
          { chunk: d.chunkId, server: d.serverId, reason: (err as Error).message },
          'chunk delete failed',
        );
      }
    };
    for (let i = 0; i < todo.length; i += CONCURRENCY)
      await Promise.all(todo.slice(i, i + CONCURRENCY).map(work));
    if (deleted > 0) this.log.info({ deleted }, 'freed chunk replicas deleted');
    if (stale > 0)
      this.log.warn({ orders: stale }, 'delete orders for copies the map counts as good dropped, not sent');
    // A full page from some server means more may be due; refused orders wait their turn,
    // so going again right away only sends orders not tried yet.
    const perServer = new Map<string, number>();
    for (const d of todo) perServer.set(d.serverId, (perServer.get(d.serverId) ?? 0) + 1);
    if (deleted + stale > 0 && [...perServer.values()].some((n) => n === BATCH)) this.task.kick();
  }
}
