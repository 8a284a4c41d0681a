import { MAX_EXCLUDED } from '../protocol/limits.js';

/** A server found not answering, and when (ms since the epoch). */
export interface FoundUnanswering {
  server: string;
  at: number;
}

/**
 * File servers that lately did not answer this client: a connection or a transfer failed
 * (refused, reset, or silent for STALL_MS). Until main sees such a server down (its
 * heartbeat timeout, 15 s by default) it goes on naming it, and every chunk placed or
 * read there waited out its own failure: a put of 64 MiB over a hung server took 71 s,
 * a get 120 s. Remembered here, it is the last replica a download tries and one a put
 * asks main to leave out, so the transfer pays for it once. Forgotten after a while: a
 * server may come back, and main knows by then.
 */
export class Unanswering {
  /** when each was last found not answering */
  private readonly since = new Map<string, number>();
  /** when other runs found each not answering (`remember`) */
  private readonly earlier = new Map<string, number>();

  /** told the first time a server is found not answering (until forgotten): the CLI says so */
  onNoted: ((serverId: string, why: string) => void) | undefined;
  /** a server was found not answering by this run itself (not only `remember`ed) */
  foundHere = false;

  constructor(
    private readonly forgetAfterMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** `serverId` did not answer, `why`. */
  note(serverId: string, why: string): void {
    const known = this.has(serverId);
    this.since.set(serverId, this.now());
    this.foundHere = true;
    if (known) return;
    try {
      this.onNoted?.(serverId, why);
    } catch {
      // A listener's failure is not the transfer's.
    }
  }

  has(serverId: string): boolean {
    const at = this.since.get(serverId);
    if (at === undefined) return false;
    if (this.fresh(at)) return true;
    this.since.delete(serverId);
    return false;
  }

  /**
   * Servers other runs found not answering lately (each CLI command is a process of its
   * own: without this each download paid a hung server's wait again until main saw it
   * down). Their copies are read last (`last`), told to no one (that run said so). They
   * are not left out of placements: one that only refused a connection for a moment (a
   * restart) would cost the writes of a whole minute a copy where servers are few.
   */
  remember(found: readonly FoundUnanswering[]): void {
    const now = this.now();
    for (const { server, at } of found)
      if (at <= now && this.fresh(at, now) && at > (this.earlier.get(server) ?? -Infinity))
        this.earlier.set(server, at);
  }

  /** Servers found not answering lately, here or by the runs remembered, and when: for the next run. */
  recent(): FoundUnanswering[] {
    const found = (from: Map<string, number>) => [...from].map(([server, at]) => ({ server, at }));
    return latestFindings(found(this.earlier), found(this.since)).filter(({ at }) => this.fresh(at));
  }

  /** The servers to leave out now, the latest found first, at most MAX_EXCLUDED. */
  list(): string[] {
    return [...this.since.keys()]
      .filter((id) => this.has(id))
      .sort((a, b) => (this.since.get(b) as number) - (this.since.get(a) as number))
      .slice(0, MAX_EXCLUDED);
  }

  /** `items` with those on servers found not answering moved to the end, each side in its order (a stable sort). */
  last<T>(items: readonly T[], serverOf: (item: T) => string): T[] {
    const late = (item: T) => Number(this.has(serverOf(item)) || this.foundEarlier(serverOf(item)));
    return [...items].sort((a, b) => late(a) - late(b));
  }

  private foundEarlier(serverId: string): boolean {
    const at = this.earlier.get(serverId);
    return at !== undefined && this.fresh(at);
  }

  /** Whether a finding at `at` is still remembered. */
  private fresh(at: number, now = this.now()): boolean {
    return now - at < this.forgetAfterMs;
  }
}

/** The latest finding of each server in `lists`, the latest first, at most MAX_EXCLUDED. */
export function latestFindings(...lists: readonly FoundUnanswering[][]): FoundUnanswering[] {
  const latest = new Map<string, number>();
  for (const { server, at } of lists.flat())
    if (at > (latest.get(server) ?? -Infinity)) latest.set(server, at);
  return [...latest]
    .sort((a, b) => b[1] - a[1])
    .slice(0, MAX_EXCLUDED)
    .map(([server, at]) => ({ server, at }));
}
