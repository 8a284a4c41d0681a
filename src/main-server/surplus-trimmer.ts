import type { Logger } from '../common/logger.js';
import { inParallel } from '../common/parallel.js';
import type { Registry } from './registry.js';
import { type Proof, ReadBackTask, type ReplicaProver, settleDisproof } from './replica-prover.js';
import type { MainStore } from './store/store.js';

/** Surplus copies looked at per pass: each costs reading up to R whole chunks. */
const PER_PASS = 32;
/** Chunks whose kept copies are read at once. */
const CONCURRENCY = 4;

/**
 * How long reading `bytes` in `tookMs` puts the next read off, at `bytesPerSecond` on
 * average (0: no limit). Main reads and hashes every byte on its one thread, ~2 s per GiB
 * over TLS: after a server came back holding a million copies repair had replaced, passes
 * back to back would keep main's thread half busy for days.
 */
export function readPauseMs(bytes: number, tookMs: number, bytesPerSecond: number): number {
  if (bytesPerSecond <= 0) return 0;
  return Math.max(0, (bytes / bytesPerSecond) * 1000 - tookMs);
}

/**
 * Trims copies beyond a chunk's wanted count (repair's `findSurplus` notes them) once
 * their grace period is over. The replica map holds what servers said they hold, and a
 * server with a valid certificate can say anything: claim chunks it never got (in its
 * heartbeats or its inventory), report a disk nearly empty so its copy is kept and an
 * honest server's is trimmed. So a surplus copy is deleted only after main has read back,
 * whole, the copies it keeps, and at least the wanted count of them hash to the chunk's
 * id. A copy that its server says it lacks is dropped from the map (repair then counts
 * right); one that is wrong or does not answer proves nothing, and the surplus copy stays.
 */
export class SurplusTrimmer extends ReadBackTask {
  constructor(
    private readonly store: MainStore,
    private readonly registry: Registry,
    private readonly prover: ReplicaProver,
    private readonly log: Logger,
    private readonly now: () => number,
    /** how long a surplus copy waits before it is trimmed */
    private readonly graceMs: number,
    /** called when copies were queued for deletion */
    private readonly queued: () => void,
    /** called for a copy read back as bytes that are not the chunk */
    private readonly wrongBytes: (chunkId: string, serverId: string) => void = () => {},
    /** the average rate of reading copies back, in bytes per second (0: no limit) */
    private readonly readBytesPerSecond = 32 * 1024 * 1024,
  ) {
    super(log, 'surplus trim pass');
  }

  /** until when the read budget is spent (a timer's pass before then does nothing) */
  private readAgainAt = 0;
  /** bytes asked of servers in the current pass */
  private readBytes = 0;
  /** whether the last pass trimmed a full page: more may be due once the budget allows */
  private moreDue = false;

  protected async pass(): Promise<void> {
    const wait = this.readAgainAt - Date.now();
    if (wait > 0) {
      // Asked for before the budget allows: the rest is asked for again when it does. The
      // timer set for then may fire a little early (it counts from the event loop's clock,
      // which lags Date.now() by as long as the loop's turn has run); returning alone left
      // the rest to the timer's next round (a unit test under load waited 15 s in vain).
      if (this.moreDue) this.passAgain(wait);
      return;
    }
    this.moreDue = false;
    const due = this.store.dueSurplus(this.now() - this.graceMs, PER_PASS);
    if (due.length === 0) return;
    const started = Date.now();
    this.readBytes = 0;
    const live = new Map(this.registry.live().map((s) => [s.id, s]));
    const byChunk = new Map<string, typeof due>();
    for (const d of due) byChunk.set(d.chunkId, [...(byChunk.get(d.chunkId) ?? []), d]);
    let queued = 0;
    let kept = 0;
    await inParallel([...byChunk.values()], CONCURRENCY, async (copies) => {
      const first = copies[0] as (typeof due)[number];
      // The copies to go are not read: only the ones kept must be known real.
      const going = new Set(copies.map((d) => d.serverId));
      const proofs = await this.proveHolders(first.chunkId, first.size, live, going);
      for (const d of copies) {
        const proven = [...proofs].filter(([s, p]) => p === 'real' && s !== d.serverId).map(([s]) => s);
        if (this.store.trimSurplus(d.chunkId, d.serverId, proven, this.now())) queued++;
        else {
          kept++;
          this.log.warn(
            { chunk: d.chunkId, server: d.serverId, wanted: d.wanted, proven: proven.length },
            'a surplus copy is kept: fewer of the other copies than wanted could be read back whole',
          );
        }
      }
    });
    const pause = readPauseMs(this.readBytes, Date.now() - started, this.readBytesPerSecond);
    this.readAgainAt = Date.now() + pause;
    if (queued > 0) {
      this.log.info(
        { copies: queued },
        'copies beyond the wanted count past their grace period queued for deletion',
      );
      this.queued();
      // A full pass that trimmed something: more may be due, as soon as the read budget
      // allows. The timer alone keeps passes to 5 % of the time, and a returned server's
      // million surplus copies took weeks.
      if (due.length === PER_PASS) {
        this.moreDue = true;
        this.passAgain(pause);
      }
    }
    if (kept > 0) this.log.info({ copies: kept }, 'surplus copies kept for now: they are noted again later');
  }

  /**
   * Reads back every copy of a chunk on a live server but those in `skip`; a server that
   * lacks its copy loses it from the map.
   */
  private async proveHolders(
    chunkId: string,
    size: number,
    live: Map<string, { id: string; url: string }>,
    skip: Set<string>,
  ): Promise<Map<string, Proof>> {
    const holders = (this.store.replicasOf([chunkId]).get(chunkId) ?? []).flatMap((id) => {
      const s = live.get(id);
      return s && !skip.has(id) ? [s] : [];
    });
    const proofs = new Map<string, Proof>();
    this.readBytes += holders.length * size;
    await Promise.all(
      holders.map(async (server) => {
        const proof = await this.prover.prove(chunkId, size, server, this.stopping.signal);
        proofs.set(server.id, proof);
        if (proof === 'missing' || proof === 'wrong') {
          const { store, registry, log, now, wrongBytes } = this;
          settleDisproof(
            { store, registry, log, now, wrongBytes },
            chunkId,
            server.id,
            proof,
            'surplus check',
          );
        }
      }),
    );
    return proofs;
  }
}
