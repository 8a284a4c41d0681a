import { Readable } from 'node:stream';
import { errorFromResponse, requestJson } from '../common/http-client.js';
import { unreachable } from '../common/http-errors.js';
import type { Logger } from '../common/logger.js';
import { retryWithBackoff } from '../common/retry.js';
import { type Agent, request } from '../common/undici.js';
import { ticketVerifier } from '../crypto/tickets.js';
import { SedfsError } from '../protocol/errors.js';
import {
  HEARTBEAT_MAX_CHANGES,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type InventoryResponse,
  LISTED_AFTER_HEADER,
  type RegisterRequest,
  type RegisterResponse,
} from '../protocol/main-api.js';
import type { ChunkStore } from './chunk-store.js';
import type { ClusterKeys } from './context.js';
import { inventoryLines } from './routes/list-inventory.js';

export interface MainLinkOptions {
  mainUrl: string;
  joinToken: string;
  serverId: string;
  port: number;
  /** URL others should use to reach this server; main derives it from the connection when unset. */
  advertiseUrl?: string;
}

/**
 * This server's side of the cluster: register (with retries until main answers), send
 * the full inventory, then heartbeat, each beat carrying the chunks gained and lost
 * since the last. If main forgets the server (a main restored from an older state) the
 * next heartbeat gets 404 and the server registers again.
 */
/** Joining errors that retrying cannot fix. */
export const FINAL_JOIN_ERRORS = new Set<string>([
  'SEDFS_ERR_JOIN_TOKEN',
  'SEDFS_ERR_CA_MISMATCH',
  'SEDFS_ERR_SERVER_REMOVED',
  'SEDFS_ERR_SERVER_KEY_MISMATCH',
  'SEDFS_ERR_CONFIG',
]);

export class MainLink {
  private keys: ClusterKeys | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private mainReachable = true;
  private heartbeatMs = 5000;
  private onStop: () => void = () => undefined;
  /** a beat is on its way to main now */
  private beating = false;
  /** another beat is wanted as soon as this one is done */
  private beatAgain = false;

  constructor(
    private readonly opts: MainLinkOptions,
    private readonly store: ChunkStore,
    private readonly agent: Agent,
    private readonly log: Logger,
    /** told the ids of servers an admin removed, at every heartbeat */
    private readonly onRemoved: (ids: string[]) => void = () => undefined,
  ) {}

  currentKeys = (): ClusterKeys | undefined => this.keys;

  /** Resolves once registered; a wrong join token rejects at once, other failures retry. */
  async start(signal?: AbortSignal): Promise<void> {
    const stop = new AbortController();
    signal?.addEventListener('abort', () => stop.abort(), { once: true });
    this.onStop = () => stop.abort();
    try {
      await retryWithBackoff(() => this.register(), {
        isFinal: (err) => err instanceof SedfsError && FINAL_JOIN_ERRORS.has(err.code),
        onRetry: (err) => this.noteUnreachable(err),
        signal: stop.signal,
      });
    } catch (err) {
      if (stop.signal.aborted) return;
      throw err;
    }
    this.scheduleHeartbeat();
  }

  stop(): void {
    this.stopped = true;
    this.onStop();
    if (this.timer) clearTimeout(this.timer);
  }

  private async register(): Promise<void> {
    const body: RegisterRequest = {
      id: this.opts.serverId,
      port: this.opts.port,
      ...(this.opts.advertiseUrl ? { url: this.opts.advertiseUrl } : {}),
      stats: await this.store.stats(),
    };
    const res = await requestJson<RegisterResponse>(this.agent, `${this.opts.mainUrl}/v1/servers/register`, {
      body,
      headers: this.auth(),
    });
    this.keys = { receiptKey: res.receiptKey, verifyTicket: ticketVerifier(res.ticketPublicKey) };
    this.heartbeatMs = res.heartbeatIntervalMs;
    this.noteReachable();
    this.log.info({ server: res.id, url: res.url, main: this.opts.mainUrl }, 'joined the cluster');
    await this.sendInventory(res.at);
  }

  /** `answeredAt`: the `at` of main's answer this follows (see LISTED_AFTER_HEADER). */
  private async sendInventory(answeredAt: number | undefined): Promise<void> {
    // The listing says everything the change log would; changes from here on are new.
    this.store.changes.clear();
    const url = `${this.opts.mainUrl}/v1/servers/${this.opts.serverId}/inventory`;
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(url, {
        dispatcher: this.agent,
        method: 'PUT',
        headers: {
          ...this.auth(),
          'content-type': 'application/octet-stream',
          ...(Number.isSafeInteger(answeredAt) ? { [LISTED_AFTER_HEADER]: String(answeredAt) } : {}),
        },
        body: Readable.from(inventoryLines(this.store)),
      });
    } catch (err) {
      throw unreachable(url, err);
    }
    if (res.statusCode >= 400) throw await errorFromResponse(res, url);
    const diff = (await res.body.json()) as InventoryResponse;
    this.log.info(diff, 'inventory reported');
  }

  /** Tells main which chunks failed a re-hash here (they are already quarantined). */
  async reportCorrupt(chunkIds: string[]): Promise<void> {
    await requestJson(this.agent, `${this.opts.mainUrl}/v1/servers/${this.opts.serverId}/corrupt`, {
      body: { chunks: chunkIds },
      headers: this.auth(),
    });
  }

  /**
   * Beats now, not at the next tick: the disk filled up, and main should stop placing
   * chunks here at once. A flood of refusals costs one beat at a time, not one each.
   */
  reportSpaceNow(): void {
    if (this.stopped || !this.keys) return;
    if (this.beating) {
      this.beatAgain = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    void this.beat();
  }

  private scheduleHeartbeat(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    if (this.beatAgain) {
      this.beatAgain = false;
      void this.beat();
      return;
    }
    this.timer = setTimeout(() => void this.beat(), this.heartbeatMs);
  }

  private async beat(): Promise<void> {
    this.beating = true;
    try {
      await this.beatOnce();
    } finally {
      this.beating = false;
    }
    this.scheduleHeartbeat();
  }

  private async beatOnce(): Promise<void> {
    const changes = this.store.changes.take(HEARTBEAT_MAX_CHANGES);
    try {
      const body: HeartbeatRequest = { ...(await this.store.stats()), ...changes };
      const res = await requestJson<HeartbeatResponse>(
        this.agent,
        `${this.opts.mainUrl}/v1/servers/${this.opts.serverId}/heartbeat`,
        {
          body,
          headers: this.auth(),
          // A beat stuck on a dead link is worth nothing; the next one tries afresh.
          signal: AbortSignal.timeout(Math.max(1000, 2 * this.heartbeatMs)),
        },
      );
      this.noteReachable();
      this.onRemoved(res.removed ?? []);
      if (this.store.changes.overflowed) {
        this.log.warn('too many changes piled up while main was away: sending a full inventory');
        await this.sendInventory(res.at).catch((e) => {
          this.store.changes.overflowed = true;
          this.noteUnreachable(e);
        });
      }
    } catch (err) {
      this.store.changes.giveBack(changes);
      if (err instanceof SedfsError && err.code === 'SEDFS_ERR_SERVER_REMOVED') {
        if (this.mainReachable)
          this.log.error('an admin removed this server from the cluster: main refuses it');
        this.mainReachable = false;
      } else if (err instanceof SedfsError && err.code === 'SEDFS_ERR_UNKNOWN_SERVER') {
        this.log.warn('main does not know this server: registering again');
        await this.register().catch((e) => this.noteUnreachable(e));
      } else {
        this.noteUnreachable(err);
      }
    }
  }

  private auth(): Record<string, string> {
    return { authorization: `Bearer ${this.opts.joinToken}` };
  }

  private noteUnreachable(err: unknown): void {
    if (!this.mainReachable) return;
    this.mainReachable = false;
    if (err instanceof SedfsError && err.code === 'SEDFS_ERR_EXISTS') {
      // Main answered: it found another server registered at this address, and not this
      // one answering there (yet). Said as it is, not as a network failure.
      this.log.warn(
        { main: this.opts.mainUrl, reason: err.message },
        'main does not let this server register at its address yet (another server is registered there); retrying',
      );
      return;
    }
    this.log.warn(
      { main: this.opts.mainUrl, reason: (err as Error).message },
      'main is unreachable; retrying',
    );
  }

  private noteReachable(): void {
    if (this.mainReachable) return;
    this.mainReachable = true;
    this.log.info({ main: this.opts.mainUrl }, 'main is reachable again');
  }
}
