import type { Logger } from '../common/logger.js';
import { endpointOfUrl } from '../common/tls.js';
import { randomSecret } from '../crypto/hash.js';
import { SedfsError } from '../protocol/errors.js';
import type { RegisterRequest, ServerState, ServerStatsBody, ServerView } from '../protocol/main-api.js';
import type { MainStore, ServerRecord } from './store/store.js';

/** What `sedfs servers` shows for an id that got a certificate but never registered. */
const NEVER_REGISTERED: Omit<ServerView, 'id'> = {
  url: '',
  state: 'enrolled',
  totalBytes: 0,
  freeBytes: 0,
  usedBytes: 0,
  chunkCount: 0,
  lastHeartbeat: 0,
  missing: 0,
  extra: 0,
};

/**
 * Which file servers exist and which are alive. A server is up while its last
 * heartbeat is younger than the configured silence; state is derived, never stored,
 * so a restarted main needs no clean-up. A sweep logs each transition once.
 */
/** How long a server that failed a storage audit gets new copies only when no other can take them. */
const SUSPECT_FOR_MS = 3600_000;

export class Registry {
  private readonly lastState = new Map<string, ServerState>();
  /**
   * When each server was last heard, whether or not main could record it: with main's
   * disk full a beat is refused (507) before its time is written, and every server
   * looked down within the heartbeat timeout, so reads found no live copy.
   */
  private readonly heardAt = new Map<string, number>();
  /** when each server last failed a storage audit */
  private readonly failedAudit = new Map<string, number>();
  /** servers a sweep found lost (their copies no longer count), until they beat again */
  private readonly lost = new Set<string>();
  /**
   * Told when a sweep finds a server lost: its chunks are short of copies from that
   * moment. Repair looks at the chunk map a stretch at a time, and an idle sweep of a
   * million chunks takes minutes; a kick makes it look everywhere at once.
   */
  onLost: (id: string) => void = () => {};
  /** the ids registered at each endpoint (`idsAt`), as of the store's `addressesVersion` */
  private addresses: { version: number; ids: Map<string, readonly string[]> } | undefined;
  /** servers left out of `live` for their URL, already logged */
  private readonly unreachableNoted = new Set<string>();
  /** when this process began: servers' silences before it are main's own */
  private readonly startedAt: number;
  /** the last beat main had heard of any server when this process began */
  private readonly lastHeardBeforeStart: number;

  constructor(
    private readonly store: MainStore,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly heartbeatTimeoutMs: number,
    /** silence, beyond the heartbeat timeout, after which a down server's copies stop counting */
    private readonly lostAfterMs = 600_000,
    /** how file servers are reached: https, or http with --insecure-http */
    private readonly scheme: 'https' | 'http' = 'https',
    /**
     * Whether what answers at a URL now is the server with this id (`answersAs` in
     * address-probe.ts); without it, no id joins at another's address.
     */
    private readonly answersAs: (url: string, id: string) => Promise<boolean> = async () => false,
  ) {
    this.startedAt = now();
    // About when the last process of main stopped: servers beat every few seconds.
    this.lastHeardBeforeStart = Math.max(0, ...store.listServers().map((s) => s.lastHeartbeat));
  }

  /**
   * The URL main publishes for a server: what it advertised, else the address it came
   * from. A cluster on TLS takes only https:// (enrolment and registration alike): main,
   * peers and clients would otherwise send tickets and orders in the clear, to wherever
   * it points.
   */
  urlFor(advertised: string | undefined, remoteAddress: string, port: number): string {
    if (advertised !== undefined && !URL.canParse(advertised))
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'url is not a URL');
    if (advertised !== undefined && !this.reachable(advertised))
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'this cluster runs over TLS: url must be https://');
    return advertised ?? `${this.scheme}://${formatHost(remoteAddress)}:${port}`;
  }

  /** A URL this cluster reaches servers at: any on --insecure-http, https:// only on TLS. */
  private reachable(url: string): boolean {
    return this.scheme === 'http' || url.startsWith('https://');
  }

  /** Other servers registered at `url`'s address (removed ones left out). */
  private othersAt(url: string, id: string): ServerRecord[] {
    const endpoint = endpointOfUrl(url);
    return this.store
      .listServers()
      .filter((s) => s.id !== id && !s.removedAt && URL.canParse(s.url) && endpointOfUrl(s.url) === endpoint);
  }

  async register(req: RegisterRequest, remoteAddress: string): Promise<ServerRecord> {
    const url = this.urlFor(req.url, remoteAddress, req.port);
    // Main expects the certificate of a server registered at an address when it connects
    // there (`idsAt`): another id joins there while that one's copies count only if what
    // answers there now proves to be it (a server started afresh on a wiped data folder,
    // addresses handed out anew), so no id is ever connected to in another's place.
    const there = this.othersAt(url, req.id);
    const holder = there.find((s) => !this.wasLost(s, this.now()));
    if (holder && !(await this.answersAs(url, req.id).catch(() => false))) this.refuse(req.id, url, holder);
    // Every other server there, a lost one too, is expected there no more: one that comes
    // back registers again from where it is. Looked up again, the list may have changed
    // while main asked: one that registered there meanwhile was not what main checked the
    // answer against, and is displaced only if lost; else this one tries again (and main
    // asks again).
    const now = this.now();
    const displaced: ServerRecord[] = [];
    for (const s of this.othersAt(url, req.id)) {
      if (there.some((t) => t.id === s.id) || this.wasLost(s, now)) displaced.push(s);
      else this.refuse(req.id, url, s, 'registered there while main asked the address');
    }
    const existing = this.store.getServer(req.id);
    const returning = existing !== undefined && this.wasLost(existing, now);
    // One transaction: a failure (a full disk) leaves the address with those it had.
    const rec = this.store.registerServer(
      { id: req.id, url, ...req.stats, registeredAt: now, lastHeartbeat: now },
      existing?.receiptKey ?? randomSecret(32),
      displaced.map((s) => s.id),
    );
    for (const moved of displaced)
      this.log.warn(
        { server: moved.id, url, now: req.id },
        'file server no longer at its address (another server registered there): not used until it registers again',
      );
    this.log.info(
      { server: rec.id, url, chunks: req.stats.chunkCount, returning: existing !== undefined },
      existing ? 'file server re-registered' : 'file server registered',
    );
    if (returning) this.noteReturned(rec.id, now);
    this.noteUp(rec.id, existing);
    return rec;
  }

  private refuse(id: string, url: string, holder: ServerRecord, meanwhile?: string): never {
    this.log.warn(
      { server: id, url, holder: holder.id },
      meanwhile
        ? `registration refused: another server ${meanwhile}; the registering server tries again`
        : 'registration refused: another server is at that address, and what answers there is not the server registering',
    );
    throw new SedfsError(
      'SEDFS_ERR_EXISTS',
      meanwhile
        ? `server ${holder.id.slice(0, 8)} ${meanwhile} (${url}): try again`
        : `server ${holder.id.slice(0, 8)} is registered at ${url}, and what answers there is not server ${id.slice(0, 8)}: start this server at that address first, or have the other lost or removed (sedfs admin remove-server ID)`,
    );
  }

  /** Records a beat; true when the server is back after being lost (a partition healed). */
  heartbeat(id: string, stats: ServerStatsBody): boolean {
    const before = this.store.getServer(id);
    const now = this.now();
    // Another server registered at this one's address (`register`): this one registers
    // again from wherever it is now (its beats alone would keep counting copies no one
    // can reach).
    if (before?.url === '')
      throw new SedfsError(
        'SEDFS_ERR_UNKNOWN_SERVER',
        'main knows no address for this server (another server registered at its last one): register again',
      );
    if (!before) throw new SedfsError('SEDFS_ERR_UNKNOWN_SERVER');
    // Both measured from the beat before this one.
    const returned = this.wasLost(before, now);
    this.noteUp(id, before);
    this.heardAt.set(id, now);
    if (!this.store.heartbeat(id, stats, now)) throw new SedfsError('SEDFS_ERR_UNKNOWN_SERVER');
    if (returned) this.noteReturned(id, now);
    return returned;
  }

  private wasLost(rec: ServerRecord, now: number): boolean {
    return this.silence(rec, now) > this.heartbeatTimeoutMs + this.lostAfterMs;
  }

  /**
   * How long main, while it ran, has not heard from a server. Main's own downtime is not
   * the server's silence: a server heard until main stopped, and beating again soon after
   * it started, was never lost (it is not "back", and keeps its place in the order surplus
   * copies are trimmed in), while one already silent long before the stop still is.
   */
  private silence(rec: ServerRecord, now: number): number {
    const gap = now - this.lastHeard(rec);
    return this.lastHeard(rec) <= this.lastHeardBeforeStart
      ? gap - (this.startedAt - this.lastHeardBeforeStart)
      : gap;
  }

  private noteReturned(id: string, now: number): void {
    // Its chunks were re-replicated meanwhile: what is now surplus is trimmed from it first.
    this.store.markReturned(id, now);
    this.log.warn({ server: id }, 'a lost file server came back: its surplus copies will be removed');
  }

  stateOf(rec: ServerRecord): ServerState {
    if (rec.removedAt) return 'removed';
    return this.now() - this.lastHeard(rec) <= this.heartbeatTimeoutMs ? 'up' : 'down';
  }

  /** The last beat heard from `rec`'s server: recorded, or only heard (see heardAt). */
  private lastHeard(rec: ServerRecord): number {
    return Math.max(rec.lastHeartbeat, this.heardAt.get(rec.id) ?? 0);
  }

  /** Ids of servers an admin removed: file servers refuse their certificates too. */
  removed(): string[] {
    return this.store
      .listServers()
      .filter((s) => s.removedAt)
      .map((s) => s.id);
  }

  /**
   * Every server main knows, and every id that got a certificate but never registered:
   * after a join token leaked, those are what an admin looks for and removes.
   */
  view(): ServerView[] {
    const enrolled = this.store.enrolledOnly().map((e): ServerView => ({ ...NEVER_REGISTERED, id: e.id }));
    const known = this.store.listServers().map(
      (s): ServerView => ({
        id: s.id,
        url: s.url,
        state: this.stateOf(s),
        totalBytes: s.totalBytes,
        freeBytes: s.freeBytes,
        ...(s.freeUnknown ? { freeUnknown: true as const } : {}),
        usedBytes: s.usedBytes,
        chunkCount: s.chunkCount,
        lastHeartbeat: s.lastHeartbeat,
        missing: s.missingCount,
        extra: s.extraCount,
      }),
    );
    return [...known, ...enrolled];
  }

  /**
   * Servers up and reachable: new copies, reads and main's orders go to these. One whose
   * recorded URL this cluster does not reach servers at (plain http:// on TLS, recorded
   * before registration refused it) is left out until it registers again.
   */
  live(): ServerRecord[] {
    return this.store.listServers().filter((s) => {
      // No address: another server registered at this one's last (`register`).
      if (this.stateOf(s) !== 'up' || s.url === '') return false;
      if (this.reachable(s.url)) return true;
      if (!this.unreachableNoted.has(s.id)) {
        this.unreachableNoted.add(s.id);
        this.log.warn(
          { server: s.id, url: s.url },
          'file server recorded at a URL that is not https in a TLS cluster: not used until it registers again',
        );
      }
      return false;
    });
  }

  /**
   * The servers registered at an endpoint (`endpointOfUrl`), removed ones left out:
   * main's connections there must show one of their certificates. Undefined for an
   * endpoint no server is registered at.
   */
  idsAt(endpoint: string): readonly string[] | undefined {
    // Asked at every request main sends a file server: the list is read again only
    // after an address changed, not once per delete order, copy or proof.
    const version = this.store.addressesVersion();
    if (this.addresses?.version !== version) this.addresses = { version, ids: this.readAddresses() };
    return this.addresses.ids.get(endpoint);
  }

  private readAddresses(): Map<string, readonly string[]> {
    const ids = new Map<string, string[]>();
    for (const s of this.store.listServers()) {
      if (s.removedAt || !URL.canParse(s.url)) continue;
      const endpoint = endpointOfUrl(s.url);
      ids.set(endpoint, [...(ids.get(endpoint) ?? []), s.id]);
    }
    return ids;
  }

  /** A storage audit found a copy this server was counted for missing or wrong. */
  noteFailedAudit(id: string): void {
    this.failedAudit.set(id, this.now());
  }

  /** No storage audit of it failed within the last hour: new copies may go there freely. */
  trusted(id: string): boolean {
    return this.now() - (this.failedAudit.get(id) ?? -Infinity) > SUSPECT_FOR_MS;
  }

  /** Servers whose copies still count: up, or down for less than the lost-after period. */
  counted(): ServerRecord[] {
    const now = this.now();
    return this.store.listServers().filter((s) => !s.removedAt && !this.lostNow(s, now));
  }

  /**
   * Lost (its copies no longer count, its chunks are copied elsewhere) after a silence
   * past the heartbeat timeout and the lost-after period, but not within main's own
   * first heartbeat timeout: a main that was down longer than that finds every server's
   * last beat old, and would have copied chunks among the first servers to beat again
   * for those whose holders had not beaten yet, only to trim the copies moments later.
   * Every server that is up beats within the timeout.
   */
  private lostNow(rec: ServerRecord, now: number): boolean {
    return this.wasLost(rec, now) && now - this.startedAt > this.heartbeatTimeoutMs;
  }

  /** Logs servers that went quiet or came back since the last sweep; tells of servers lost. */
  sweep(): void {
    const now = this.now();
    for (const s of this.store.listServers()) {
      this.noteState(s.id, this.stateOf(s), s.lastHeartbeat);
      if (s.removedAt || !this.lostNow(s, now)) this.lost.delete(s.id);
      else if (!this.lost.has(s.id)) {
        this.lost.add(s.id);
        this.log.warn(
          { server: s.id, silentMs: now - s.lastHeartbeat },
          'file server is lost: its copies no longer count, and its chunks are copied elsewhere',
        );
        this.onLost(s.id);
      }
    }
  }

  /**
   * Notes a server up, after the state its last record gave it: one back before any sweep
   * saw it down (sweeps run every ~timeout/4) is still logged down, then up again. A
   * server this process has not seen yet (main restarted) is only noted up.
   */
  private noteUp(id: string, previous: ServerRecord | undefined): void {
    if (previous && this.lastState.has(id))
      this.noteState(id, this.stateOf(previous), previous.lastHeartbeat);
    this.noteState(id, 'up');
  }

  private noteState(id: string, state: ServerState, lastHeartbeat?: number): void {
    const before = this.lastState.get(id);
    this.lastState.set(id, state);
    if (before === undefined || before === state) return;
    if (state === 'down') {
      this.log.warn(
        { server: id, silentMs: this.now() - (lastHeartbeat ?? 0) },
        'file server is down (no heartbeat)',
      );
    } else if (state === 'up') {
      this.log.info({ server: id }, 'file server is up again');
    }
  }
}

/** IPv6 literals need brackets in URLs; IPv4-mapped addresses read better unmapped. */
function formatHost(address: string): string {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.includes(':') ? `[${v4}]` : v4;
}
