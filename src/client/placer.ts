import type { Placement, PlacementRequest } from '../protocol/main-api.js';
import type { ClusterClient } from './cluster-client.js';

type Chunk = PlacementRequest['chunks'][number];

interface Entry {
  chunk: Chunk;
  placement: Promise<Placement>;
  resolve: (p: Placement) => void;
  reject: (err: unknown) => void;
  /** when main was asked for it (its ticket's life started about then) */
  askedAt?: number;
  /** the servers main was asked to leave out, lately found not answering (see Unanswering) */
  avoided?: string[];
}

/**
 * A placement asked for this long ago is asked for again: its write ticket lives 5
 * minutes by default, and a chunk placed early waits for a send slot, which on a slow
 * link can take a while. Asked again, it costs one more request for that chunk.
 */
const MAX_PLACEMENT_AGE_MS = 60_000;

/**
 * Asks main where sealed chunks go, several chunks per request. Main records every
 * placement in a transaction it syncs to disk before answering, so one request per
 * 4 MiB chunk cost it ~0.35 s of CPU in a 1 GiB put (of ~4.4 s over every process) and
 * each chunk a wait of a few milliseconds. Chunks are registered as they are sealed and
 * asked for when one of them is about to be sent: that request takes every sealed chunk
 * not yet placed along (those sealed ahead wait for a send slot anyway), so the next
 * ones find their placement ready.
 */
export class Placer {
  private readonly entries = new Map<number, Entry>();
  private warned = false;

  constructor(
    private readonly client: ClusterClient,
    private readonly uploadId: string,
    /** main's warning, told at most once (e.g. fewer servers up than replicas wanted) */
    private readonly onWarning?: (message: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Registers chunk number `index`, sealed, as one to place; nothing is asked yet. */
  add(index: number, chunk: Chunk): void {
    this.entries.set(index, entryFor(chunk));
  }

  /** Where chunk `index` goes: asked now, with every other chunk still unasked, unless it has been. */
  placementOf(index: number): Promise<Placement> {
    let entry = this.entries.get(index);
    if (!entry) return Promise.reject(new Error(`chunk ${index} was never added`));
    if (entry.askedAt === undefined) {
      this.ask([...this.entries.values()].filter((e) => e.askedAt === undefined));
    } else if (this.now() - entry.askedAt > MAX_PLACEMENT_AGE_MS) {
      entry = entryFor(entry.chunk);
      this.ask([entry]);
    }
    this.entries.delete(index);
    const asked = entry;
    return asked.placement.then((p) => this.aroundUnanswering(asked, p));
  }

  /**
   * `p`, unless it names a server found not answering since it was asked for: then once
   * more, leaving that one out (`p` still, if main cannot).
   */
  private aroundUnanswering(asked: Entry, p: Placement): Promise<Placement> | Placement {
    const unanswering = this.client.unanswering;
    if (!p.servers.some((s) => unanswering.has(s.id) && !asked.avoided?.includes(s.id))) return p;
    const again = entryFor(asked.chunk);
    this.ask([again]);
    return again.placement.catch(() => p);
  }

  private ask(batch: Entry[]): void {
    const at = this.now();
    const avoided = this.client.unanswering.list();
    for (const e of batch) {
      e.askedAt = at;
      e.avoided = avoided;
    }
    this.client
      .placeAround(
        this.uploadId,
        batch.map((e) => e.chunk),
        avoided,
      )
      .then(
        ({ placements, warning }) => {
          batch.forEach((e, i) => {
            const p = placements[i];
            // Main answers in the order asked; anything else is refused, not guessed at.
            if (p?.chunk === e.chunk.id) e.resolve(p);
            else
              e.reject(new Error(`main's placement ${i + 1} of ${batch.length} is not for the chunk asked`));
          });
          if (warning) this.warn(warning);
        },
        (err) => {
          for (const e of batch) e.reject(err);
        },
      );
  }

  private warn(message: string): void {
    if (this.warned) return;
    this.warned = true;
    try {
      this.onWarning?.(message);
    } catch {
      // A listener's failure is not the upload's.
    }
  }
}

function entryFor(chunk: Chunk): Entry {
  let resolve!: (p: Placement) => void;
  let reject!: (err: unknown) => void;
  const placement = new Promise<Placement>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A chunk given up before it is sent (another failed) may never be awaited.
  placement.catch(() => undefined);
  return { chunk, placement, resolve, reject };
}
