import type { Logger } from '../common/logger.js';
import { inParallel } from '../common/parallel.js';
import { randomHexId } from '../crypto/hash.js';
import type { Registry } from './registry.js';
import { type DisproofDeps, ReadBackTask, type ReplicaProver, settleDisproof } from './replica-prover.js';
import type { MainStore, ServerRecord } from './store/store.js';

/** A server that fails audits is asked for its full inventory at most this often. */
const INVENTORY_AFTER_FAILURE_MS = 3600_000;

/** Servers audited at once in a pass. */
const CONCURRENCY = 4;

/** What the audits of one server found since main started. */
export interface AuditTally {
  /** replicas read back whole and right */
  passed: number;
  /** replicas the server did not have, or sent as bytes that are not the chunk */
  failed: number;
}

/**
 * Reads back, now and then, one replica main counts on each live server: from a random
 * place in the id order, then each in turn, so every replica is read once in as many
 * audits as the server holds. What main counts rests on servers' word: a receipt, a heartbeat, an
 * inventory. A server that lost a chunk without noticing, or one with a valid
 * certificate that lies (takes copies and drops them, claims chunks it never got), would
 * count toward a chunk's copies for ever, and repair would never restore them. Bytes that
 * hash to the chunk's id cannot be faked. A replica the server does not have leaves the
 * map, one that is wrong is marked corrupt (and its server told to re-check it), and
 * repair restores either elsewhere; each server's tally shows in `sedfs check`.
 */
export class StorageAuditor extends ReadBackTask {
  private readonly tallies = new Map<string, AuditTally>();
  private get deps(): DisproofDeps {
    const { store, registry, log, now, wrongBytes } = this;
    return { store, registry, log, now, wrongBytes };
  }
  /** when each server was last asked for its inventory after a failed audit */
  private readonly inventoried = new Map<string, number>();
  /** where each server's next audit looks: just after the replica it audited last */
  private readonly next = new Map<string, string>();

  constructor(
    private readonly store: MainStore,
    private readonly registry: Registry,
    private readonly prover: ReplicaProver,
    private readonly log: Logger,
    private readonly now: () => number,
    /** a replica left the map or was marked corrupt: restore it */
    private readonly lost: () => void,
    /** a replica was read back as bytes that are not the chunk: have its server re-check it */
    private readonly wrongBytes: (chunkId: string, serverId: string) => void,
    /**
     * asks a server that failed for its full inventory: an honest one that lost files
     * then loses all of them from the map at once, not one per audit
     */
    private readonly inventory: (server: ServerRecord) => Promise<void> = async () => undefined,
    /** where in the id space each pick starts (tests pin it) */
    private readonly randomId: () => string = () => randomHexId(32),
  ) {
    super(log, 'storage audit pass');
  }

  /** Audits of a server since main started. */
  tally(serverId: string): AuditTally {
    return { ...(this.tallies.get(serverId) ?? { passed: 0, failed: 0 }) };
  }

  protected async pass(): Promise<void> {
    let lost = 0;
    await inParallel(this.registry.live(), CONCURRENCY, async (server) => {
      // From a random place once, then replica after replica in id order, wrapping round:
      // a fresh random id each time picked a replica in proportion to the gap of ids
      // before it, so one just after another was all but never read. `id + '0'` sorts
      // right after `id`, before any longer one.
      const replica = this.store.replicaToAudit(server.id, this.next.get(server.id) ?? this.randomId());
      if (!replica) return;
      this.next.set(server.id, `${replica.chunkId}0`);
      const proof = await this.prover.prove(replica.chunkId, replica.size, server, this.stopping.signal);
      if (proof === 'unknown') return;
      const tally = this.tallies.get(server.id) ?? { passed: 0, failed: 0 };
      this.tallies.set(server.id, tally);
      if (proof === 'real') {
        tally.passed++;
        return;
      }
      if (!settleDisproof(this.deps, replica.chunkId, server.id, proof, 'audit')) return;
      tally.failed++;
      lost++;
      if (
        this.now() - (this.inventoried.get(server.id) ?? Number.NEGATIVE_INFINITY) >
        INVENTORY_AFTER_FAILURE_MS
      ) {
        this.inventoried.set(server.id, this.now());
        // Not awaited: a full inventory can take a while, and it logs its own failure.
        void this.inventory(server);
      }
    });
    if (lost > 0) this.lost();
  }
}
