import type { Logger } from '../common/logger.js';
import { SerialTask } from '../common/serial-task.js';
import { type Agent, request } from '../common/undici.js';
import type { TicketSigner } from '../crypto/tickets.js';
import { TICKET_HEADER } from '../protocol/ticket.js';
import type { Registry } from './registry.js';
import type { MainStore } from './store/store.js';

const BATCH = 256;
const CONCURRENCY = 8;

/**
 * Sends the delete orders for replicas of freed chunks (a file removed, a version
 * replaced, an upload that expired without committing), for unknown chunks and copies
 * beyond R once their grace period is over. The queue lives in the store, so orders
 * survive a restart; an order for a server that is down waits until it is up. A 404
 * counts as done.
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
    const liveIds = this.registry.live().map((s) => s.id);
    const surplus = this.store.expireSurplus(this.now() - this.extraGraceMs, liveIds, this.now());
    if (surplus > 0)
      this.log.info(
        { copies: surplus },
        'copies beyond the wanted count past their grace period queued for deletion',
      );
    const expired = this.store.expireUploads(this.now());
    if (expired > 0)
      this.log.info({ uploads: expired }, 'expired uploads ended; their orphan chunks queued for deletion');
    const live = new Map(this.registry.live().map((s) => [s.id, s.url]));
    const todo = this.store.pendingDeletions(BATCH).filter((d) => live.has(d.serverId));
    let deleted = 0;
    const work = async (d: { chunkId: string; serverId: string }) => {
      const ticket = this.signer.sign({
        op: 'delete',
        chunks: [d.chunkId],
        servers: [d.serverId],
        exp: this.now() + 60_000,
      });
      try {
        const res = await request(`${live.get(d.serverId)}/v1/chunks/${d.chunkId}`, {
          dispatcher: this.agent,
          method: 'DELETE',
          headers: { [TICKET_HEADER]: ticket },
        });
        await res.body.dump();
        if (res.statusCode === 200 || res.statusCode === 404) {
          this.store.deletionDone(d.chunkId, d.serverId);
          deleted++;
        } else {
          this.log.warn(
            { chunk: d.chunkId, server: d.serverId, status: res.statusCode },
            'chunk delete refused',
          );
        }
      } catch (err) {
        this.log.warn(
          { chunk: d.chunkId, server: d.serverId, reason: (err as Error).message },
          'chunk delete failed',
        );
      }
    };
    for (let i = 0; i < todo.length; i += CONCURRENCY)
      await Promise.all(todo.slice(i, i + CONCURRENCY).map(work));
    if (deleted > 0) this.log.info({ deleted }, 'freed chunk replicas deleted');
    if (todo.length === BATCH) this.task.kick();
  }
}
