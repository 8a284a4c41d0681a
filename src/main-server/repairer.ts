import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import { errorFromResponse } from '../common/http-client.js';
import { atMostOnceAMinute, type Logger } from '../common/logger.js';
import { inParallel } from '../common/parallel.js';
import { SerialTask } from '../common/serial-task.js';
import { watchedRequest } from '../common/stall-watch.js';
import type { Agent } from '../common/undici.js';
import { randomHexId } from '../crypto/hash.js';
import { receiptValid } from '../crypto/receipts.js';
import type { TicketSigner } from '../crypto/tickets.js';
import { SedfsError } from '../protocol/errors.js';
import type { PutChunkResponse } from '../protocol/file-server-api.js';
import { TICKET_HEADER } from '../protocol/ticket.js';
import { chooseTrustedFirst, withRoomFor } from './placement.js';
import type { Registry } from './registry.js';
import { type ReplicaProver, settleDisproof } from './replica-prover.js';
import type { MainStore } from './store/store.js';

/**
 * Restored replicas are recorded together this often, in one transaction: one each made
 * main's thread wait for an fsync per copy (~1.3 ms, more while the disk is busy with the
 * copies themselves). One lost to a crash comes back with the target's next heartbeat.
 */
const RECORD_EVERY_MS = 100;

/** Replica re-checks in flight at once, across all servers. */
const MAX_VERIFYING = 32;

export interface RepairOptions {
  /** copies in flight at once */
  concurrency: number;
  /** MiB/s across all copies; 0 = unlimited */
  rateMiBs: number;
  /** most chunks a pass restores (a page of the queue) */
  batch: number;
  /**
   * Chunks of the map a pass looks at: the stretch after the one the last pass looked at,
   * in id order, so a pass holds main's thread for a bounded time and a sweep of the whole
   * map spans several passes.
   */
  span: number;
  /**
   * Copies made but not yet recorded (main's disk full) past which no more are ordered
   * until they are (10,000 unless told)
   */
  maxUnrecorded?: number;
  /** how often copies made during a page are recorded, besides at its end (RECORD_EVERY_MS unless told) */
  recordEveryMs?: number;
}

/**
 * Restores every chunk to its wanted number of good replicas by ordering server-to-
 * server copies. The queue is the chunk map itself (chunks with too few good replicas
 * on servers that are not lost), so it survives a restart with nothing extra to keep.
 * Each pass looks at one stretch of the map (`span` chunks, in id order, wrapping round
 * at the end): a whole sweep spans several passes, and no pass holds main's thread for
 * a scan of the whole map.
 * Copies go to live servers that hold no copy, chosen by free space; the source is a
 * live server with a good copy. Nothing is ever deleted here.
 */
export class Repairer {
  private readonly task: SerialTask;
  /** replicas restored and bytes copied since start, for `sedfs check` */
  readonly progress = { chunks: 0, bytes: 0, failures: 0 };
  /** Replicas being re-checked now, as `chunk/server`. */
  private readonly verifying = new Set<string>();
  /** Chunks without a live copy in the last whole sweep (logged when it changes). */
  private stuck = 0;
  /** The same, in the stretches looked at so far in this sweep. */
  private stuckSoFar = 0;
  /** The chunk id after which the next pass looks ('': a sweep begins). */
  private cursor = '';
  /** Sweeps ended since start. */
  private sweeps = 0;
  /**
   * Since a kick: passes follow each other closely until the sweep has come round to where
   * the cursor was then, so the work the kick announced is found within one quick round
   * rather than a stretch per timer tick.
   */
  private hurry: { from: string; wrapped: boolean } | undefined;
  /**
   * Chunks said to have lost a replica (a heartbeat's, a scrubber's report) since a pass
   * last looked: the next passes look at them by id, ahead of the stretches.
   */
  private readonly named = new Set<string>();
  /** Chunks repair found no live target with room for in the last whole sweep. */
  private noRoom = 0;
  /** The same, in the stretches looked at so far in this sweep. */
  private noRoomSoFar = 0;
  /**
   * When the next copy may start under `--repair-rate`: each copy takes its bytes' time
   * at the rate from here, whichever slot it runs in. Each slot used to wait its own
   * copy's time times the slots after it, so a pass of one copy ran at an eighth of the
   * rate.
   */
  private paceAt = 0;
  /**
   * Replicas restored since they were last recorded: kept until a recording succeeds
   * (main's disk may be full), and counted as copies by each pass meanwhile, or the map,
   * which does not know of them, would have them made again.
   */
  private restored: { chunkId: string; serverId: string }[] = [];
  private readonly recordFailed = atMostOnceAMinute(
    (times: number, info: { reason: string; replicas: number }) =>
      this.log.error(
        { ...info, times },
        'could not record restored replicas yet: kept, and tried again at each pass (said at most once a minute)',
      ),
  );
  private recordTimer: NodeJS.Timeout | undefined;
  /** the next page of the repair queue, when the last one was full */
  private nextPage: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly store: MainStore,
    private readonly registry: Registry,
    private readonly signer: TicketSigner,
    private readonly agent: Agent,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly opts: RepairOptions,
    /** reads a source's copy back when a target says the source does not have it */
    private readonly prover?: ReplicaProver,
    private readonly random: () => number = Math.random,
  ) {
    this.task = new SerialTask(() => this.pass(), log, 'repair pass');
  }

  start(intervalMs: number): void {
    this.task.start(intervalMs);
  }

  /** There is work somewhere in the map: a quick round of passes finds it. */
  kick(): void {
    this.hurry = { from: this.cursor, wrapped: false };
    this.task.kick();
  }

  /**
   * These chunks lost replicas: the next passes look at them by id, a page at a time,
   * rather than a quick round of the whole map (a stretch every few tens of ms for ~12 s
   * at a million chunks) for a few chunks. So many that a round costs no more than
   * looking them up one by one make a round instead.
   */
  kickChunks(chunkIds: Iterable<string>): void {
    for (const id of chunkIds) this.named.add(id);
    if (this.named.size > this.opts.span) {
      this.named.clear();
      this.kick();
    } else this.task.kick();
  }

  /**
   * Runs passes until a whole sweep of the map, from its start, restores nothing more (or
   * `maxSweeps` sweeps, the one under way counting as one); for `check --repair`.
   */
  async drain(maxSweeps = 10): Promise<void> {
    for (let i = 0; i < maxSweeps && !this.stopped; i++) {
      const before = this.progress.chunks;
      const whole = this.cursor === '';
      const sweep = this.sweeps;
      // Passes make no headway while copies wait to be recorded (each tries to record
      // them first): nothing to wait for then.
      do await this.task.runNow();
      while (this.sweeps === sweep && !this.stopped && !this.waitingToRecord());
      if (this.waitingToRecord()) return;
      if (whole && this.progress.chunks === before) return;
    }
  }

  /**
   * Repair's queue as it is now, for `sedfs check`: the chunks in the map, those with too
   * few good copies, and those of them with no good copy on a live server. Counted a
   * stretch of the map (`span` chunks) at a time, as a pass reads one, letting main's
   * other work run between stretches: the whole map in one query held main's only thread
   * ~0.9 s at a million chunks, at every check. A chunk that changes while the count goes
   * on is counted as it was when its stretch was read.
   */
  async countQueue(): Promise<{ chunks: number; underReplicated: number; withoutLiveCopy: number }> {
    const counted = this.registry.counted().map((s) => s.id);
    const live = this.registry.live().map((s) => s.id);
    const total = { chunks: 0, underReplicated: 0, withoutLiveCopy: 0 };
    for (let after = ''; ; ) {
      const stretch = this.store.repairCounts(counted, live, { after, span: this.opts.span });
      total.chunks += stretch.chunks;
      total.underReplicated += stretch.underReplicated;
      total.withoutLiveCopy += stretch.withoutLiveCopy;
      if (stretch.end) return total;
      after = stretch.upTo;
      await setImmediate();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.nextPage);
    await this.task.stop();
    clearTimeout(this.nextPage);
    this.recordRestored();
  }

  /** The next pass in `ms`, replacing any one set already (which `stop` could no longer clear). */
  private nextPageIn(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.nextPage);
    this.nextPage = setTimeout(() => this.task.kick(), ms);
    this.nextPage.unref();
  }

  private noteRestored(chunkId: string, serverId: string): void {
    this.restored.push({ chunkId, serverId });
    this.recordTimer ??= setTimeout(() => this.recordRestored(), this.opts.recordEveryMs ?? RECORD_EVERY_MS);
  }

  private recordRestored(): void {
    clearTimeout(this.recordTimer);
    this.recordTimer = undefined;
    if (this.restored.length === 0) return;
    const replicas = this.restored;
    this.restored = [];
    try {
      this.store.addReplicas(replicas, this.now());
    } catch (err) {
      // Kept for the next try (this runs from a timer too: a throw would end main). The
      // copies are safe on their targets meanwhile, and their heartbeats report them.
      this.restored = replicas.concat(this.restored);
      this.recordFailed.note({ reason: (err as Error).message, replicas: this.restored.length });
    }
  }

  /**
   * Orders a server to re-hash one of its replicas (after a reader reported it). If it
   * fails, the server quarantines it, main marks it corrupt and repair restores it.
   */
  async verifyReplica(chunkId: string, serverId: string): Promise<void> {
    const key = `${chunkId}/${serverId}`;
    // One re-check of a replica at a time is enough, and only so many in all: the rest
    // are left to the scrubber rather than queued without bound.
    if (this.verifying.has(key)) return;
    if (this.verifying.size >= MAX_VERIFYING) {
      this.log.warn(
        { chunk: chunkId, server: serverId },
        'too many re-checks in progress: this one is skipped',
      );
      return;
    }
    const server = this.registry.live().find((s) => s.id === serverId);
    if (!server) return;
    this.verifying.add(key);
    try {
      await this.verify(chunkId, server);
    } finally {
      this.verifying.delete(key);
    }
  }

  private async verify(chunkId: string, server: { id: string; url: string }): Promise<void> {
    const serverId = server.id;
    const ticket = this.signer.sign({
      op: 'verify',
      chunks: [chunkId],
      servers: [serverId],
      exp: this.now() + 60_000,
    });
    const url = `${server.url}/v1/chunks/${chunkId}/verify`;
    try {
      const res = await watchedRequest(this.agent, url, {
        method: 'POST',
        headers: { [TICKET_HEADER]: ticket },
        expectedIds: [serverId],
      });
      if (res.statusCode >= 400) throw await errorFromResponse(res, url);
      const { ok } = (await res.body.json()) as { ok: boolean };
      if (ok) {
        this.log.info({ chunk: chunkId, server: serverId }, 'reported replica re-checked: it is good');
        return;
      }
      this.store.markReplicaCorrupt(chunkId, serverId);
      this.log.warn(
        { chunk: chunkId, server: serverId },
        'reported replica is corrupt: quarantined, repairing',
      );
      this.kickChunks([chunkId]);
    } catch (err) {
      this.log.warn(
        { chunk: chunkId, server: serverId, reason: (err as Error).message },
        'could not re-check a reported replica',
      );
    }
  }

  /**
   * Reads back a source's copy that a target could not get: one its server does not have
   * leaves the map (the next pass copies from another holder), one that is not the chunk
   * gets a verify order. Bounded with the re-checks.
   */
  private async checkSource(
    chunkId: string,
    size: number,
    source: { id: string; url: string },
  ): Promise<void> {
    const key = `${chunkId}/${source.id}`;
    if (!this.prover || this.verifying.has(key) || this.verifying.size >= MAX_VERIFYING) return;
    this.verifying.add(key);
    try {
      const proof = await this.prover.prove(chunkId, size, source);
      if (proof !== 'missing' && proof !== 'wrong') return;
      const wrongBytes = (c: string, s: string) => void this.verifyReplica(c, s);
      const { store, registry, log, now } = this;
      if (
        settleDisproof(
          { store, registry, log, now, wrongBytes },
          chunkId,
          source.id,
          proof,
          'repair source check',
        )
      )
        this.kickChunks([chunkId]);
    } finally {
      this.verifying.delete(key);
    }
  }

  /** As many copies wait to be recorded as repair may hold: it orders no more meanwhile. */
  private waitingToRecord(): boolean {
    return this.restored.length >= (this.opts.maxUnrecorded ?? 10_000);
  }

  private async pass(): Promise<void> {
    // Copies whose recording failed are tried again first: the queue below is read from the map.
    this.recordRestored();
    // Main cannot record what it copies (its disk is full): more copies would only grow
    // the list held here. The copies made are safe on their targets meanwhile, and the
    // targets' heartbeats report them to main as well.
    if (this.waitingToRecord()) return;
    if (this.named.size > 0) return this.passOverNamed();
    const live = this.registry.live();
    const queried = performance.now();
    const after = this.cursor;
    // Worst first (fewest good copies, then oldest) within the stretch, as the whole map
    // was ordered before it was looked at a stretch at a time. Ids are hashes, so a sweep
    // meets chunks in no particular order: a chunk down to its last copy waits at most
    // one sweep, which since a kick or while copies are made runs a stretch every few
    // times a pass's queries (see the end of the pass), seconds at a million chunks.
    const {
      chunks: todo,
      withoutLiveCopy,
      upTo,
      end,
    } = this.store.underReplicated(
      this.registry.counted().map((s) => s.id),
      live.map((s) => s.id),
      this.opts.batch,
      { after, span: this.opts.span },
    );
    let blockingMs = performance.now() - queried;
    const { restored, noRoom } = await this.restore(todo, live);
    // A full page may leave more of the stretch short: the next pass looks at it again,
    // unless this page restored nothing (its copies failing), which must not keep the
    // rest of the map from being looked at (the next sweep comes back to them).
    if (todo.length < this.opts.batch || !restored) {
      // Copies beyond R (a lost server came back after its chunks were restored elsewhere)
      // are noted here, once a sweep, and trimmed by the SurplusTrimmer after the grace period.
      if (upTo !== '') {
        const scanned = performance.now();
        const surplus = this.store.findSurplus(live, this.now(), { after, upTo });
        blockingMs += performance.now() - scanned;
        if (surplus > 0) this.log.info({ copies: surplus }, 'copies beyond the wanted count found');
      }
      this.stretchDone(end ? '' : upTo, withoutLiveCopy, noRoom);
    }
    // The next pass comes after 4 times what this pass's queries held main's thread (a
    // fifth of it at most) while copies are being made and since a kick, rather than at
    // the timer (which would wait 19 times the whole pass, copies included): a lost
    // server's chunks would otherwise come a page per pause of minutes. Only after a pass
    // that restored something or while a kick's round lasts, so failing copies do not
    // spin and an idle map costs a stretch per timer tick.
    if (restored || this.hurry) this.nextPageIn(4 * blockingMs);
  }

  /**
   * A page of the chunks named by `kickChunks`, looked up by id: no stretch of the map is
   * read and the cursor stays where it is. Named chunks a copy failed for are left to the
   * sweep, as a stretch's are.
   */
  private async passOverNamed(): Promise<void> {
    const ids = [...this.named].slice(0, this.opts.batch);
    for (const id of ids) this.named.delete(id);
    const live = this.registry.live();
    const queried = performance.now();
    const { chunks: todo } = this.store.underReplicatedOf(
      this.registry.counted().map((s) => s.id),
      live.map((s) => s.id),
      ids,
      this.opts.batch,
    );
    const blockingMs = performance.now() - queried;
    await this.restore(todo, live);
    // More named chunks: the next page soon, paced as the stretches are.
    if (this.named.size > 0) this.nextPageIn(4 * blockingMs);
  }

  /**
   * Orders the copies that bring `todo` back to their wanted counts, from a live holder
   * to live servers with room and no copy, and waits for them. Tells whether any copy was
   * made, and how many chunks had no live server with room to go to.
   */
  private async restore(
    todo: { id: string; size: number; wanted: number; holders: string[] }[],
    live: ReturnType<Registry['live']>,
  ): Promise<{ restored: boolean; noRoom: number }> {
    const liveById = new Map(live.map((s) => [s.id, s]));
    /** copies made and not yet recorded, by chunk: the map does not count them */
    const unrecorded = new Map<string, string[]>();
    for (const r of this.restored)
      unrecorded.set(r.chunkId, [...(unrecorded.get(r.chunkId) ?? []), r.serverId]);
    const work: (() => Promise<void>)[] = [];
    let noRoom = 0;
    /** bytes this pass sends each target: its reported room holds them all, or it gets no more */
    const planned = new Map<string, number>();
    for (const chunk of todo) {
      const made = unrecorded.get(chunk.id) ?? [];
      if (chunk.holders.length + made.length >= chunk.wanted) continue;
      const sources = chunk.holders.flatMap((h) => liveById.get(h) ?? []);
      // Any live holder, not always the first: one that cannot give its copy (rotted, or a
      // server that lies about what it holds and answers a verify order "fine") would
      // otherwise be the source at every pass, and the chunk never repaired.
      const source = sources[Math.floor(this.random() * sources.length)];
      // The store gives only chunks with a live holder, but the registry may have moved on.
      if (!source) continue;
      const others = this.store.replicasOf([chunk.id]).get(chunk.id) ?? [];
      // Not to a server with a delete order queued for the chunk: the order, perhaps on
      // its way, would delete the new copy.
      const barred = this.store.barredFrom([chunk.id]).get(chunk.id) ?? { corrupt: [], deleting: [] };
      const elsewhere = live.filter(
        (s) =>
          !chunk.holders.includes(s.id) &&
          !others.includes(s.id) &&
          !made.includes(s.id) &&
          !barred.deleting.includes(s.id),
      );
      // Only servers with room: a full one would refuse the copy, pass after pass.
      const candidates = withRoomFor(
        elsewhere.map((s) => ({ id: s.id, url: s.url, freeBytes: s.freeBytes - (planned.get(s.id) ?? 0) })),
        chunk.size,
      );
      if (candidates.length === 0 && elsewhere.length > 0) noRoom += 1;
      // A server whose copy main holds corrupt gets one only when the others cannot make up
      // the count: its disk may rot copies, but in a cluster of R servers it is the only
      // place left (a repair copy replaces the bad file there and counts as good again).
      const targets = chooseTrustedFirst(
        candidates,
        chunk.wanted - chunk.holders.length - made.length,
        this.random,
        (id) => this.registry.trusted(id) && !barred.corrupt.includes(id),
      );
      for (const target of targets) {
        planned.set(target.id, (planned.get(target.id) ?? 0) + chunk.size);
        work.push(() => this.copy(chunk.id, chunk.size, source, target));
      }
    }
    // A window, not batches: the next copy starts as soon as any one ends, so a slow copy
    // does not hold the others' slots idle until it is done.
    const restoredBefore = this.progress.chunks;
    await inParallel(work, this.opts.concurrency, (copy) => copy());
    this.recordRestored();
    const restored = this.progress.chunks > restoredBefore;
    return { restored, noRoom };
  }

  /** Moves the cursor past a stretch looked at in full; at the end of the map, a sweep ends. */
  private stretchDone(next: string, withoutLiveCopy: number, noRoom: number): void {
    this.stuckSoFar += withoutLiveCopy;
    this.noRoomSoFar += noRoom;
    this.cursor = next;
    if (next === '') {
      this.sweeps++;
      this.noteWithoutLiveCopy(this.stuckSoFar);
      this.stuckSoFar = 0;
      this.noteNoRoom(this.noRoomSoFar);
      this.noRoomSoFar = 0;
      if (this.hurry) this.hurry.wrapped = true;
    }
    if (this.hurry?.wrapped && this.cursor >= this.hurry.from) this.hurry = undefined;
  }

  /** Logs, when their number changes, the chunks repair has no live server with room to copy to. */
  private noteNoRoom(n: number): void {
    if (n === this.noRoom) return;
    this.noRoom = n;
    if (n > 0)
      this.log.warn(
        { chunks: n },
        'the cluster is out of space: no live file server without a copy has room for some under-replicated chunks; they wait for space',
      );
    else this.log.info('repair has room for every under-replicated chunk again');
  }

  /** Logs the chunks repair cannot restore (no good copy on a live server) when their number changes. */
  private noteWithoutLiveCopy(n: number): void {
    const before = this.stuck;
    this.stuck = n;
    if (n === before) return;
    if (n > 0)
      this.log.warn(
        { chunks: n },
        'chunks with too few copies have no good copy on a live server: they cannot be repaired until a server holding one is back',
      );
    else this.log.info('every under-replicated chunk has a good copy on a live server again');
  }

  private async copy(
    chunkId: string,
    size: number,
    source: { id: string; url: string },
    target: { id: string; url: string },
  ): Promise<void> {
    // Before the tickets are signed: a slow rate may hold a copy back for minutes.
    if (this.opts.rateMiBs > 0) {
      const now = Date.now();
      const start = Math.max(now, this.paceAt);
      this.paceAt = start + (size / (this.opts.rateMiBs * 1024 * 1024)) * 1000;
      if (start > now) await sleep(start - now);
    }
    const exp = this.now() + 5 * 60_000;
    // The target's receipt names this copy order alone: no upload has its id, so the
    // receipt is good for nothing but the check below.
    const copyId = randomHexId();
    const writeTicket = this.signer.sign({
      op: 'write',
      chunks: [chunkId],
      servers: [target.id],
      from: source.url,
      fromServer: source.id,
      upload: copyId,
      exp,
    });
    const sourceTicket = this.signer.sign({ op: 'read', chunks: [chunkId], servers: [source.id], exp });
    const url = `${target.url}/v1/chunks/${chunkId}/replicate`;
    try {
      const res = await watchedRequest(this.agent, url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [TICKET_HEADER]: writeTicket },
        body: JSON.stringify({ sourceTicket, size }),
        expectedIds: [target.id],
      });
      if (res.statusCode >= 400) throw await errorFromResponse(res, url);
      const body = (await res.body.json()) as PutChunkResponse;
      const key = this.store.getServer(target.id)?.receiptKey ?? '';
      const receipt = body.receipts.find((r) => r.server === target.id);
      if (!receipt || !receiptValid(key, target.id, chunkId, size, copyId, receipt.receipt)) {
        throw new Error('the copy came back without a valid receipt');
      }
      this.noteRestored(chunkId, target.id);
      this.progress.chunks++;
      this.progress.bytes += size;
      this.log.info({ chunk: chunkId, from: source.id, to: target.id, size }, 'replica restored');
    } catch (err) {
      this.progress.failures++;
      this.log.warn(
        { chunk: chunkId, from: source.id, to: target.id, reason: (err as Error).message },
        'repair copy failed',
      );
      // The target got bytes that are not the chunk: the source's copy may have rotted on
      // its disk. Re-checked there (quarantined and marked corrupt if so), the next pass
      // copies from another holder instead of from the same source again and again
      // (a pass takes the first live holder) until the scrubber found it. Not awaited:
      // the check may take a while (it joins a paced scrub of the chunk), and it logs
      // its own outcome.
      if (err instanceof SedfsError && err.code === 'SEDFS_ERR_HASH_MISMATCH')
        void this.verifyReplica(chunkId, source.id);
      // The target relays that the source lacks the chunk. Main reads the source itself
      // rather than take the target's word, which could be a lie to get a good copy dropped.
      if (err instanceof SedfsError && err.code === 'SEDFS_ERR_CHUNK_NOT_FOUND')
        this.checkSource(chunkId, size, source).catch((e: Error) =>
          this.log.warn(
            { chunk: chunkId, server: source.id, reason: e.message },
            'could not check a repair source',
          ),
        );
    }
  }
}
