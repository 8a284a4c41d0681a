import { anySignal } from '../common/any-signal.js';
import type { Logger } from '../common/logger.js';
import { SerialTask } from '../common/serial-task.js';
import { type Agent, request } from '../common/undici.js';
import { sha256Hasher } from '../crypto/hash.js';
import type { TicketSigner } from '../crypto/tickets.js';
import { TICKET_HEADER } from '../protocol/ticket.js';
import type { Registry } from './registry.js';
import type { MainStore } from './store/store.js';

/**
 * What reading a replica showed: `real` (the bytes hash to the chunk's id), `missing`
 * (the server says it does not hold it), `wrong` (bytes that are not the chunk), or
 * `unknown` (no answer, an error, a cut connection: nothing proven either way).
 */
export type Proof = 'real' | 'missing' | 'wrong' | 'unknown';

/** A read that takes longer than this proves nothing; 4 MiB at 1 MiB/s fits well within it. */
const PROOF_TIMEOUT_MS = 30_000;

/**
 * Proves that a file server holds a chunk by reading it and hashing what comes back. A
 * server's own word (its heartbeats, its inventory, its answer to a verify order) can be
 * a lie from a server with a valid certificate; bytes that hash to the chunk's id cannot
 * be, because only a holder of the chunk can send them. Main reads with a read ticket it
 * signs for itself, through the same route as any reader.
 */
export class ReplicaProver {
  constructor(
    private readonly signer: TicketSigner,
    private readonly agent: Agent,
    private readonly now: () => number,
  ) {}

  /** `stop` aborts the read (main is closing): the answer is then `unknown`. */
  async prove(
    chunkId: string,
    size: number,
    server: { id: string; url: string },
    stop?: AbortSignal,
  ): Promise<Proof> {
    const ticket = this.signer.sign({
      op: 'read',
      chunks: [chunkId],
      servers: [server.id],
      exp: this.now() + PROOF_TIMEOUT_MS,
    });
    const timeout = AbortSignal.timeout(PROOF_TIMEOUT_MS);
    const signal = stop ? anySignal([timeout, stop]) : timeout;
    try {
      const res = await request(`${server.url}/v1/chunks/${chunkId}`, {
        dispatcher: this.agent,
        headers: { [TICKET_HEADER]: ticket },
        signal,
        // The server the ticket names, not whichever the registry has there when it goes out.
        expectedIds: [server.id],
      });
      if (res.statusCode === 404) {
        await res.body.dump();
        return 'missing';
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        return 'unknown';
      }
      if (Number(res.headers['content-length']) !== size) {
        await res.body.dump();
        return 'wrong';
      }
      const hasher = sha256Hasher();
      let got = 0;
      for await (const piece of res.body as AsyncIterable<Buffer>) {
        got += piece.length;
        // More than it announced: undici fails the body, but do not hash a flood first.
        if (got > size) return 'wrong';
        hasher.update(piece);
      }
      if (got < size) return 'unknown';
      return hasher.digestHex() === chunkId ? 'real' : 'wrong';
    } catch {
      return 'unknown';
    }
  }
}

/**
 * A background job that reads replicas back (the surplus trimmer, the storage auditor):
 * passes on a timer that never overlap, and closing aborts the reads in flight instead
 * of waiting out their timeout.
 */
export abstract class ReadBackTask {
  private readonly task: SerialTask;
  /** aborts the reads in flight when main closes */
  protected readonly stopping = new AbortController();
  /** the pass asked for by `passAgain`, if it waits */
  private later: NodeJS.Timeout | undefined;

  constructor(log: Logger, what: string) {
    this.task = new SerialTask(
      async () => {
        if (!this.stopping.signal.aborted) await this.pass();
      },
      log,
      what,
    );
  }

  start(intervalMs: number): void {
    this.task.start(intervalMs);
  }

  /** One pass, awaited (tests). */
  runNow(): Promise<void> {
    return this.task.runNow();
  }

  stop(): Promise<void> {
    this.stopping.abort();
    clearTimeout(this.later);
    return this.task.stop();
  }

  /** Another pass (there is more to do) after `afterMs`, or right after this one; not when closing. */
  protected passAgain(afterMs = 0): void {
    if (this.stopping.signal.aborted) return;
    clearTimeout(this.later);
    if (afterMs <= 0) {
      this.task.kick();
      return;
    }
    this.later = setTimeout(() => {
      if (!this.stopping.signal.aborted) this.task.kick();
    }, afterMs);
    this.later.unref();
  }

  protected abstract pass(): Promise<void>;
}

/** What acting on a disproved copy needs. */
export interface DisproofDeps {
  store: MainStore;
  registry: Registry;
  log: Logger;
  now: () => number;
  /** has the server re-check a copy main read back as wrong bytes */
  wrongBytes: (chunkId: string, serverId: string) => void;
}

/**
 * Acts on a read-back (an audit, a surplus check, repair's check of a source) that
 * disproved a copy main counts. One its server does not have leaves the map (believing
 * that can only make repair copy more); one sent as wrong bytes is marked corrupt, since
 * main hashed them itself, and its server is told to re-check it, so an honest one
 * quarantines it. Either way repair restores it, and the server gets new copies last for
 * a while (`Registry.trusted`). False when the copy was no longer counted (trimmed,
 * freed or reported bad while it was read): then it says nothing against the server.
 */
export function settleDisproof(
  d: DisproofDeps,
  chunkId: string,
  serverId: string,
  proof: 'missing' | 'wrong',
  during: string,
): boolean {
  if (!d.store.replicasOf([chunkId]).get(chunkId)?.includes(serverId)) return false;
  d.registry.noteFailedAudit(serverId);
  const at = { chunk: chunkId, server: serverId };
  if (proof === 'missing') {
    d.store.applyChanges(serverId, [], [chunkId], d.now());
    d.log.warn(
      at,
      `${during}: a server does not have a chunk main counted there: dropped from the map, repairing`,
    );
  } else {
    d.store.markReplicaCorrupt(chunkId, serverId);
    d.log.warn(at, `${during}: a server sent bytes that are not the chunk: marked corrupt, repairing`);
    d.wrongBytes(chunkId, serverId);
  }
  return true;
}
